"""The ``handoff`` command line.  Each module registers one group of commands.

Commands parse their arguments, make one call on the Python API (``handoff.app.api``:
``Handoff`` and ``Session``, the same calls the MCP tools make) and render what it returns;
nothing else lives here.
"""
from __future__ import annotations

import sys
from typing import Any

# Which module registers each command, so one run imports only what it uses (start-up time is most of a
# read command's cost; see docs/PERFORMANCE.md).  A name not listed here -- a new command in a module
# registered through extra.py, a group's own --help, a typo -- loads every module, exactly as before.
# tests/test_startup.py checks this table against the real registrations.
COMMAND_HOMES = {
    "init": "core", "status": "core", "channels": "core", "peers": "core",
    "send": "messages", "inbox": "messages",
    "threads list": "messages", "threads show": "messages", "threads messages": "messages",
    "directs list": "messages", "directs show": "messages", "directs messages": "messages",
    "directs resolve": "messages",
    "session new": "session", "session list": "session", "session status": "session",
    "session history": "session", "session events": "session", "session close": "session",
    "work lookup": "work", "work status": "work", "work list": "work",
    "request": "work", "list": "work", "accept": "work", "reject": "work", "progress": "work",
    "need-input": "work", "reply": "work", "complete": "work", "fail": "work", "cancel": "work",
    "metrics": "insight", "log": "insight", "verify": "review", "report": "review", "sync": "review",
    "watch": "durable", "wait": "durable", "claim": "durable", "heartbeat": "durable", "release": "durable",
    "sweep": "durable", "flush": "flush",
}
GROUPS = ("session", "threads", "directs", "work")
ROOT_OPTIONS = ("--version", "--show-completion", "--install-completion")  # (rootopts.OPTIONS)
_loaded_all = False


def __getattr__(name: str) -> Any:
    """``cli.app`` and the groups, loaded on first use (``handoff --version`` needs no Typer)."""
    if name in ("app", "directs_app", "session_app", "threads_app", "work_app"):
        from . import apps
        return getattr(apps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_all() -> None:
    """Register every command (what --help and unknown names need)."""
    global _loaded_all
    if not _loaded_all:
        from . import (  # noqa: F401  (registration)
            core,
            extra,
            messages,
            session,
            work,
        )
        _loaded_all = True
    from .common import register_pending
    register_pending()


def load_for(args: list[str]) -> None:
    """Import only the module that declares the command named by ``args``, and register only that command
    (or everything, when the name is not in COMMAND_HOMES)."""
    name = args[0] if args else ""
    if name in GROUPS:
        name = f"{name} {args[1]}" if len(args) > 1 else ""
    home = COMMAND_HOMES.get(name)
    if home is None:
        load_all()
        return
    import importlib

    from .apps import app, directs_app, session_app, threads_app, work_app
    from .common import register_pending
    importlib.import_module(f".{home}", __name__)
    group_name, _, sub = name.rpartition(" ")
    group = {"session": session_app, "threads": threads_app, "directs": directs_app, "work": work_app}.get(
        group_name, app)
    register_pending(lambda g, n: g is group and n == (sub or name))


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.  A bug (an exception that is neither a refusal nor Click's)
    prints one line and saves its traceback (``crash.py``); ``HANDOFF_DEBUG=1`` re-raises it instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except Exception as exc:
        from . import crash
        if crash.debugging():
            raise
        return crash.report(exc, args)


def _main(args: list[str]) -> int:
    if args and args[0] in ROOT_OPTIONS:  # --version, --show-completion, ...: no Typer, no commands
        from . import rootopts
        return rootopts.run(args)
    from .common import ENTRY, usage_exit
    from .fastparams import install
    from .rootopts import prepare_completion

    ENTRY[:] = [main]
    install()
    prepare_completion()
    load_for(args)
    from .apps import add_root_options, app
    if not args or args[0].startswith("-"):
        add_root_options()
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
            # a Click UsageError, matched by class name because Typer may vendor its own Click
            return usage_exit(args, exc.format_message())  # type: ignore[attr-defined]
        if "Abort" in names:
            sys.stderr.write("aborted\n")
            return 130
        raise
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())
