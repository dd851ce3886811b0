"""The ``--exec`` hook of ``handoff watch``: parsed like a shell line, run without a shell."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

from handoff.core import delivery
from handoff.errors import HandoffError


def parse_exec(cmd: str | None) -> list[str] | None:
    if cmd is None:
        return None
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise HandoffError("invalid_argument", f"--exec {cmd!r}: {exc}", hint="quote the command like a shell would") from None
    if not argv:
        raise HandoffError("invalid_argument", "--exec needs a command", hint="e.g. --exec 'python3 hook.py'")
    if shutil.which(argv[0]) is None:
        raise HandoffError("not_found", f"--exec: {argv[0]!r} is not an executable or not on PATH",
                           hint="give a path to the program (it runs without a shell)")
    return argv


def run_exec(argv: list[str], note: dict, repo: str, timeout: float | None) -> tuple[bool, str]:
    """Run the hook with the notification as JSON on stdin; never through a shell.

    The hook's stdout goes to our stderr so the JSONL stream on stdout stays clean.
    """
    env = dict(os.environ)
    env.update(delivery.exec_env(note, repo))
    env["HANDOFF_ATTEMPT"] = str(note.get("_attempt", 1))
    data = json.dumps({k: v for k, v in note.items() if not k.startswith("_")}, ensure_ascii=False).encode()
    try:
        proc = subprocess.run(argv, input=data, env=env, stdout=sys.stderr.fileno() if _has_fd(sys.stderr) else None,
                              timeout=timeout, shell=False)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout}s"
    except OSError as exc:
        return False, str(exc)
    return proc.returncode == 0, f"exit {proc.returncode}"


def _has_fd(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


