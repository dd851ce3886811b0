"""The root command's own options: ``--version``, ``--show-completion [SHELL]``, ``--install-completion [SHELL]``.

``cli.main`` answers these before Typer is imported or any command is registered, so they cost no more
than Python's start-up.  Typer's own completion options (listed in ``handoff --help``) find the shell
from the process tree only and take no name; here a name can be given, and ``$SHELL`` is the fallback
when the process tree does not tell.  The completions themselves are Typer's: the installed script runs
``handoff`` with ``_HANDOFF_COMPLETE=complete_<shell>`` and the words typed so far, and Typer answers
from the registered commands (``cli.load_all``).
"""
from __future__ import annotations

import os
import sys

PROG = "handoff"
COMPLETE_VAR = "_HANDOFF_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
OPTIONS = ("--version", "--show-completion", "--install-completion")


def version() -> str:
    """``handoff.__version__``.  The layers keep every module from importing the entry package, but it is
    always loaded before any of its modules, so it is read from there."""
    return str(sys.modules["handoff"].__version__)


def detect_shell() -> str | None:
    """The shell that runs us (from the process tree, as Typer finds it), else ``$SHELL``'s name."""
    name = None
    try:
        import shellingham  # type: ignore[import-untyped]  # (Typer's dependency)
        name = shellingham.detect_shell()[0]
    except Exception:  # no shell in the process tree (a service, CI), or shellingham missing
        name = None
    if name not in SHELLS:
        name = os.path.basename(os.environ.get("SHELL", "")) or name
    return name


def prepare_completion() -> None:
    """Register Typer's shell classes when a shell asks for completions (``_HANDOFF_COMPLETE`` set): with
    ``add_completion=False`` Typer would not, and the request would fail with "Shell bash not supported"."""
    if os.environ.get(COMPLETE_VAR):
        from typer import completion
        completion.completion_init()


def run(args: list[str]) -> int:
    """Answer ``args`` (whose first word is one of OPTIONS); the exit status."""
    flag, rest = args[0], args[1:]
    if flag == "--version":
        if rest:
            return _usage(args, f"--version takes no arguments (got {' '.join(rest)!r})")
        sys.stdout.write(f"{PROG} {version()}\n")
        return 0
    if len(rest) > 1:
        return _usage(args, f"{flag} takes at most one shell name (got {' '.join(rest)!r})")
    shell = rest[0] if rest else detect_shell()
    if shell not in SHELLS:
        found = f"{shell!r} is not" if shell else "cannot tell which shell this is; name"
        return _usage(args, f"{found} one of {', '.join(SHELLS)}: e.g. {PROG} {flag} bash")
    from typer import completion as shared  # Typer's scripts and installers

    if flag == "--show-completion":
        sys.stdout.write(shared.get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n")
        return 0
    shell, path = shared.install(shell=shell, prog_name=PROG, complete_var=COMPLETE_VAR)
    sys.stdout.write(f"{shell} completion installed in {path}\n"
                     "it takes effect in new shells (or `source` that file in this one)\n")
    return 0


def _usage(args: list[str], message: str) -> int:
    from .common import usage_exit  # (loads Typer: only on this path)
    return usage_exit(args, message)
