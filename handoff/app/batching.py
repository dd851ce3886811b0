"""``commit: batch``: writes are published at once and committed together, as one commit, a little later.

A batched write does everything an ``auto`` write does up to the commit: under the writer lock it
publishes its files and, first, their pending markers (``pending/<event id>`` under the worktree's
git dir, the same markers a failed ``auto`` commit leaves).  So the event is durable and visible to
readers and watchers at once, and whatever happens next (a crash, a kill, a reboot) the next write
or flush finds the marker and commits the file.  The pending files are committed, as ONE commit of
``.handoffs/`` paths only (``Workspace.commit_pending``, through the same ``commit_entries`` as
``auto``), when

* a write finds the oldest pending marker older than the window (``batch: {window: 2s}``): that
  write commits everything pending, its own files included;
* ``handoff flush`` runs (the end of a command sequence, an agent's hook; ``sync`` runs it first);
* the background flusher wakes: the first batched write of a batch starts one detached
  ``python -m handoff flush --after <window> --ticket T`` (double-forked through ``sh``, so nobody
  waits for it), which sleeps out the window, flushes under the writer lock and exits.  At most one is
  scheduled at a time: the file ``flusher`` under the worktree's git dir holds its ticket, its
  deadline and its pid; a write starts a new one only when that file is absent or stale (its process
  gone, or its deadline over ``GRACE_S`` ago).  A flusher exits early when its ticket is no longer in
  the file (a flush ran and took it out).  ``batch: {background: false}`` starts none.

Every step runs under the writer lock, so writers, flushers and ``auto`` writes in any number of
processes never commit a file twice or lose one.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from handoff.core.config import batch_settings
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.store import files as store


class Located(Protocol):
    """What the batching rules read of a workspace: its paths and config (a ``Place``)."""

    @property
    def paths(self) -> gitcmd.RepoPaths: ...
    @property
    def config(self) -> dict: ...


class Flushable(Located, Protocol):
    """What a flush needs of a workspace (``app.workspace.Workspace``, which imports this module)."""

    def commit_mode(self) -> str: ...
    def commit_pending(self, message: Callable[[list[str]], str]) -> Any: ...

GUARD = "flusher"  # under the worktree's git dir: "<ticket> <deadline, unix s> [<pid>]"
GRACE_S = 30.0  # a flusher still scheduled this long after its deadline is taken for dead
POLL_S = 0.1  # how often a sleeping flusher looks whether it is still wanted


def settings(ws: Located) -> tuple[int, bool]:
    """(window in ms, whether a background flusher is started)."""
    window, background, _problems = batch_settings(ws.config)
    return window, background


def markers(ws: Located) -> list[float]:
    """The mtimes of the pending markers (one per published, not yet committed event file)."""
    return marker_times(ws.paths)


def marker_times(paths: gitcmd.RepoPaths) -> list[float]:
    folder = paths.local / "pending"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    out = []
    for name in names:
        try:
            out.append(os.stat(folder / name).st_mtime)
        except OSError:
            continue
    return out


def pending_count(ws: Located) -> int:
    return len(markers(ws))


def oldest_age_s(ws: Located) -> float | None:
    stamps = markers(ws)
    return max(0.0, time.time() - min(stamps)) if stamps else None


def due(ws: Located) -> bool:
    """A batched write commits everything pending now: the oldest pending file is older than the window."""
    window_ms, _background = settings(ws)
    if window_ms <= 0:
        return True
    age = oldest_age_s(ws)
    return age is not None and age * 1000 >= window_ms


# ----------------------------------------------------------------- the flusher
def _read_guard(ws: Located) -> tuple[str, float, int | None] | None:
    try:
        fields = (ws.paths.local / GUARD).read_text().split()
        return fields[0], float(fields[1]), (int(fields[2]) if len(fields) > 2 else None)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (someone else's process: it exists)
    return True


def _scheduled(guard: tuple[str, float, int | None] | None) -> bool:
    if guard is None:
        return False
    _ticket, deadline, pid = guard
    if time.time() > deadline + GRACE_S:
        return False
    return pid is None or _alive(pid)


def schedule(ws: Located) -> None:
    """After a batched write (under the writer lock): make sure a flusher will commit it.  Never fails: the
    write is already published, and without a flusher the next write past the window or a flush commits."""
    try:
        _schedule(ws)
    except (OSError, HandoffError, subprocess.SubprocessError, ValueError):
        pass


def _schedule(ws: Located) -> None:
    window_ms, background = settings(ws)
    if not background or _scheduled(_read_guard(ws)):
        return
    _ref, _head, why = gitcmd.head_state(ws.paths)
    if why:  # (rebase, merge, detached HEAD: nothing could be committed now; the next write after it does)
        return
    ticket = os.urandom(8).hex()
    deadline = time.time() + window_ms / 1000
    guard = ws.paths.local / GUARD
    store.write_hint(guard, f"{ticket} {deadline:.3f}\n".encode())  # first: no second flusher meanwhile
    pid = spawn(ws, ticket, window_ms)
    store.write_hint(guard, f"{ticket} {deadline:.3f} {pid}\n".encode())


def spawn(ws: Located, ticket: str, window_ms: int) -> int:
    """Start ``python -m handoff flush --after <window> --ticket T`` detached (``sh`` forks it and exits
    at once, so it belongs to no one); its pid."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # (above handoff/)
    env = {k: v for k, v in os.environ.items() if k not in gitcmd.SCRUB}
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "handoff", "flush", "--repo", str(ws.paths.worktree),
            "--after", f"{window_ms / 1000:g}", "--ticket", ticket, "-o", "json"]
    log = ws.paths.local / "flusher.log"  # (what the last flusher said: for `doctor` and for people)
    script = f"{shlex.join(argv)} </dev/null >{shlex.quote(str(log))} 2>&1 & echo $!"
    proc = subprocess.run(["/bin/sh", "-c", script], cwd=ws.paths.worktree, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, start_new_session=True, timeout=30, check=True)
    return int(proc.stdout.decode().strip())


# ----------------------------------------------------------------- flushing
def message(rels: list[str]) -> str:
    """``handoff: 9 events batched (2 session-open, request, ...)`` and the paths, one a line (a ``handoff:``
    subject and nothing but added ``.handoffs/`` files: ``sync`` may rebase it like any handoff commit)."""
    kinds: Counter[str] = Counter()
    for rel in rels:
        parts = rel.rsplit("/", 1)[-1].split(".")
        kinds[parts[1] if len(parts) > 2 else "event"] += 1
    summary = ", ".join(k if n == 1 else f"{n} {k}" for k, n in kinds.most_common())
    head = f"handoff: {len(rels)} event{'s' if len(rels) != 1 else ''} batched ({summary})"
    return head + "\n\n" + "".join(f"  {rel}\n" for rel in sorted(rels))


def flush(ws: Flushable, *, ticket: str | None = None) -> dict[str, Any]:
    """``handoff flush``: commit everything pending now, as one commit (under the writer lock)."""
    from handoff.git import commit as gitcommit
    with store.file_lock(ws.paths.shared / "lock"):
        store.sweep_temp(ws.paths.local / "tmp")
        gitcommit.sweep_private(ws.paths)
        guard = _read_guard(ws)
        if ticket is not None and (guard is None or guard[0] != ticket):
            return _payload(ws, None, superseded=True)  # another flush took this one's place
        try:
            result = ws.commit_pending(message)
        finally:
            if guard is not None and (ticket is None or guard[0] == ticket):
                try:
                    os.unlink(ws.paths.local / GUARD)
                except OSError:
                    pass
    return _payload(ws, result)


def flush_after(ws: Flushable, seconds: float, ticket: str | None = None) -> dict[str, Any]:
    """``handoff flush --after S``: wait ``S`` seconds, then flush.  With a ``ticket`` (the background
    flusher) stop waiting as soon as another flush took the ticket out, or nothing is pending any more."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(POLL_S, left))
        if ticket is not None:
            guard = _read_guard(ws)
            if guard is None or guard[0] != ticket:
                return _payload(ws, None, superseded=True)
            if not markers(ws):
                break  # (a due write or an `auto` write committed them: just take the ticket out)
    return flush(ws, ticket=ticket)


def _payload(ws: Flushable, result: Any, *, superseded: bool = False) -> dict[str, Any]:
    left = pending_count(ws)
    out: dict[str, Any] = {"committed": bool(result and result.committed), "commit": result.commit if result else None,
                           "paths": list(result.paths) if result and result.committed else [],
                           "events": len(result.paths) if result and result.committed else 0,
                           "commit_skipped": result.commit_skipped if result else None,
                           "commit_pending": left > 0, "pending": left, "mode": ws.commit_mode()}
    if superseded:
        out["superseded"] = True
    return out


def flush_if_pending(ws: Flushable) -> dict[str, Any] | None:
    """``sync``'s first step: commit what batched writes left pending (None when nothing is)."""
    if not markers(ws):
        return None
    return flush(ws)
