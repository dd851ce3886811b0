"""The last resort: a bug (an exception that is neither a refusal nor Click's) ends in one line on stderr
and a saved traceback, not in a screen of Python.

The traceback goes to ``.git/handoff/crash/<timestamp>.txt`` of the repository the command ran in (never
committed), else to the system's temp dir.  ``HANDOFF_DEBUG=1`` lets the exception through instead.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from handoff.errors import HandoffError
from handoff.views import render

DEBUG_ENV = "HANDOFF_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def repo_arg(argv: list[str]) -> str | None:
    """``--repo PATH`` (or ``--repo=PATH``) from the command line, as given."""
    for i, a in enumerate(argv):
        if a == "--repo" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--repo="):
            return a.split("=", 1)[1]
    return None


def crash_dir(argv: list[str]) -> Path:
    """Where the traceback goes: the repository's ``.git/handoff/crash``, else the temp dir."""
    try:
        from handoff.git.cmd import discover
        target = discover(repo_arg(argv)).local / "crash"
        target.mkdir(parents=True, exist_ok=True)
        return target
    except Exception:  # (the repository may be what is broken: never fail while reporting a failure)
        return Path(tempfile.gettempdir())


def save(exc: BaseException, argv: list[str]) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
    text = (f"handoff {' '.join(argv)}\npython {sys.version.split()[0]} on {sys.platform}\n\n"
            + "".join(traceback.format_exception(exc)))
    for where in (crash_dir(argv), Path(tempfile.gettempdir())):
        name = where / (f"{stamp}.txt" if where.name == "crash" else f"handoff-crash-{stamp}.txt")
        try:
            name.write_text(text, encoding="utf-8")
            return name
        except OSError:
            continue
    return Path("(not saved)")


def report(exc: BaseException, argv: list[str]) -> int:
    """Save the traceback; say so in one line (a JSON error with ``-o json|jsonl|yaml``); exit status 1."""
    from .common import wants_json
    path = save(exc, argv)
    what = f"{type(exc).__name__}: {exc}"
    message = f"internal error (a bug in handoff): {what}"
    hint = f"please file a bug report with the traceback saved in {path} (HANDOFF_DEBUG=1 shows it here)"
    fmt = wants_json(argv)
    if fmt in ("json", "jsonl", "yaml"):
        render.emit(HandoffError("internal", message, hint=hint, exit_code=1).to_json(),
                    "json" if fmt == "jsonl" else fmt)
    sys.stderr.write(render.one_line(f"handoff: {message}; {hint}", 1000) + "\n")
    return 1
