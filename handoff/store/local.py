"""Per-machine state that is never committed: acknowledgements and watcher cursors.

Lives under the git common dir, so every worktree of a repo shares it, and
``rm -rf .git/handoff`` only loses convenience, never events.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.store.place import Place


def _acks_path(ws: Place, session_id: str):
    return ws.paths.shared / "acks" / f"{session_id}.txt"


def read_acks(ws: Place, session_id: str) -> set[str]:
    try:
        return {line.strip() for line in _acks_path(ws, session_id).read_text().splitlines() if line.strip()}
    except OSError:
        return set()


def acks_file_id(ws: Place, session_id: str) -> tuple[int, int]:
    """(inode, size) of a session's acks file; (0, 0) when it is missing."""
    try:
        st = os.stat(_acks_path(ws, session_id))
    except OSError:
        return 0, 0
    return st.st_ino, st.st_size


def read_acks_from(ws: Place, session_id: str, start: int) -> tuple[int, list[str]]:
    """The ids acknowledged after byte ``start`` of the (append-only) acks file, up to its last whole
    line, and the offset read up to."""
    try:
        with open(_acks_path(ws, session_id), "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return start, []
    end = data.rfind(b"\n") + 1  # (a line being appended right now is read next time)
    ids = [line.strip() for line in data[:end].decode("utf-8", "replace").splitlines()]
    return start + end, [i for i in ids if i]


def add_acks(ws: Place, session_id: str, message_ids: list[str]) -> None:
    path = _acks_path(ws, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # append-only: concurrent ackers never lose each other's lines
        fh.write("".join(f"{m}\n" for m in message_ids))
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------ own sessions
#
# The sessions this clone opened, as it opened them: when another open of the same id sorts first in
# the shared log (a back-dated copy committed by someone else), writes still go out as the peer this
# clone opened, never as the other one.  One small file per session id, written once.


def _own_path(ws: Place, session_id: str):
    return ws.paths.shared / "sessions" / f"{session_id}.json"


def remember_session(ws: Place, opened: dict) -> None:
    """Record ``opened`` ({session_id, peer_id, agent, name, open_event_id}); the first record of an id stays."""
    path = _own_path(ws, opened["session_id"])
    if not path.exists():
        store.atomic_write_local(path, json.dumps(opened, sort_keys=True).encode())


def own_sessions(ws: Place, *idents: str | None) -> dict[str, dict]:
    """session id -> this clone's record of opening it, for the sessions ``idents`` name (ids or peer ids)."""
    from handoff.core.ids import is_valid
    out: dict[str, dict] = {}
    for ident in idents:
        sid = ident.rsplit(".", 1)[-1] if isinstance(ident, str) else None  # (a peer id ends in its session id)
        if sid is None or not is_valid("session", sid) or sid in out:
            continue
        try:
            rec = json.loads(_own_path(ws, sid).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("session_id") == sid and isinstance(rec.get("peer_id"), str):
            out[sid] = rec
    return out


# ------------------------------------------------------------ watcher cursors
#
# AGH's notification cursors, keyed (consumer, session): the set of
# notification keys (message ids, ``remind:<work>:<n>``, ``lease_lost:<event>``)
# a consumer has been delivered.  One line per key, appended and fsynced only
# after the delivery succeeded, so a crash can repeat the last entry but never
# skip one (at-least-once).  Reading tolerates a torn last line.


def _cursor_path(ws: Place, session_id: str, consumer: str):
    return ws.paths.shared / "cursors" / session_id / f"{consumer}.log"


def read_cursor(ws: Place, session_id: str, consumer: str) -> set[str]:
    try:
        data = _cursor_path(ws, session_id, consumer).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    lines = data.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # torn write of the last key: it was never confirmed, deliver it again
    return {line.strip() for line in lines if line.strip()}


def record_cursor(ws: Place, session_id: str, consumer: str, keys: list[str]) -> None:
    path = _cursor_path(ws, session_id, consumer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(f"{k}\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())


def compact_cursor(ws: Place, session_id: str, consumer: str, keep: set[str]) -> None:
    """Rewrite the cursor with only ``keep`` (keys that can still come up); atomic."""
    store.atomic_write_local(_cursor_path(ws, session_id, consumer),
                             "".join(f"{k}\n" for k in sorted(keep)).encode())


def reset_cursor(ws: Place, session_id: str, consumer: str) -> None:
    try:
        _cursor_path(ws, session_id, consumer).unlink()
    except FileNotFoundError:
        pass


def record_dead_letter(ws: Place, session_id: str, consumer: str, entry: dict) -> str:
    path = ws.paths.shared / "cursors" / session_id / f"{consumer}.dead.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return str(path)


class registered_watcher:
    """``with registered_watcher(ws, session_ids):`` marks a running watcher for ``handoff doctor``.

    One small file per process under the git common dir (``"*"`` = every session); a file left
    by a killed process is ignored because its pid is gone.
    """

    def __init__(self, ws: Place, session_ids: list[str]):
        self.path = ws.paths.shared / "watchers" / f"{os.getpid()}.json"
        self.info = {"pid": os.getpid(), "sessions": sorted(session_ids)}

    def __enter__(self):
        store.atomic_write_local(self.path, json.dumps(self.info).encode())
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
