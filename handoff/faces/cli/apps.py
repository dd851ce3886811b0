"""The Typer applications: the root ``handoff`` command and its groups (the modules register onto them)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import rootopts

app = typer.Typer(
    name="handoff",
    help="Git-backed handoffs between AI agents: append-only YAML events under .handoffs/, "
         "reduced to inboxes, threads, work and handoff status.",
    no_args_is_help=True,
    add_completion=False,  # (ours take a shell name: rootopts.py)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog="A bug prints one line and saves its traceback under .git/handoff/crash/ (outside a repository: "
           "the temp dir); set HANDOFF_DEBUG=1 to see the traceback instead.",
)
session_app = typer.Typer(help="Open, inspect and close agent sessions.", no_args_is_help=True)
threads_app = typer.Typer(help="Public threads: N-to-N conversations readable by the channel.", no_args_is_help=True)
directs_app = typer.Typer(help="Direct rooms: exactly two peers (restricted attention, not secrecy).",
                          no_args_is_help=True)
work_app = typer.Typer(help="Work units: the work_id lifecycle.", no_args_is_help=True)
app.add_typer(session_app, name="session")
app.add_typer(threads_app, name="threads")
app.add_typer(directs_app, name="directs")
app.add_typer(work_app, name="work")


def _answer(flag: str):
    """The callback of a root option: ``cli.main`` answers it before Typer loads when it comes first; this
    answers it anywhere else, the same way."""
    def callback(value) -> None:
        if value:
            raise typer.Exit(rootopts.run([flag] + ([value] if isinstance(value, str) else [])))
    return callback


ShellOpt = "bash, zsh, fish, powershell or pwsh (default: the shell this runs in, else $SHELL)"


def root(
    show_version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_answer("--version"),
                                               help="Print `handoff <version>` and exit.")] = False,
    install: Annotated[Optional[str], typer.Option("--install-completion", metavar="[SHELL]", is_eager=True,
                                                   callback=_answer("--install-completion"),
                                                   help=f"Install tab completion for SHELL: {ShellOpt}.")] = None,
    show: Annotated[Optional[str], typer.Option("--show-completion", metavar="[SHELL]", is_eager=True,
                                                callback=_answer("--show-completion"),
                                                help="Print the completion script for SHELL, to install it "
                                                     "yourself.")] = None,
) -> None:
    pass  # (the options are eager and exit; the help is the app's)


def add_root_options() -> None:
    """Give the root command its options (for --help, the completion protocol and options after others).
    A command line that starts with a command name cannot use them, and is spared Typer's work on them."""
    if app.registered_callback is None:
        app.callback()(root)
