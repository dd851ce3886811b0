"""The ``handoff`` command line.  Each module registers one group of commands.

Commands parse their arguments, call one function of the core or the
workspace, and return data for ``render``; nothing else lives here.
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="handoff",
    help="Git-backed handoffs between AI agents: append-only YAML events under .handoffs/, "
         "reduced to inboxes, threads, work and handoff status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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

from . import core, messages, session, work  # noqa: E402,F401  (registration)
from . import extra  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    from .common import usage_exit

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=args, prog_name="handoff", standalone_mode=False)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # Click's exceptions (Typer may vendor its own copy of Click)
        names = {c.__name__ for c in type(exc).__mro__}
        if "Exit" in names:
            return int(getattr(exc, "exit_code", 0) or 0)
        if "UsageError" in names:
            return usage_exit(args, exc.format_message())
        if "Abort" in names:
            sys.stderr.write("aborted\n")
            return 130
        raise
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())
