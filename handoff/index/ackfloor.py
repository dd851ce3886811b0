"""A session's inbox without reading every acknowledgement it ever made: a floor below which all is acked.

A session that keeps up acknowledges almost every message it gets, so its acks file and its candidate
messages (``narrow.for_inbox``) grow with the history while what waits stays small.  Table ``ackfloor``
keeps, per session, the clock ``floor`` and the message count ``n0`` of the last look, with this
invariant: *every candidate message with ``hlc < floor`` and ``ord < n0`` is acknowledged*.  An inbox then
asks the indexes only for candidates with ``hlc >= floor`` and for messages folded since (``ord >= n0``),
and reads only the acks appended since (the file is append-only: ``upto``, its inode); ``tail`` keeps the
acked ids the floor does not cover.  Anything unexpected (another acks file, other channels, a message
count that went down) starts again from no floor.  A full fold drops the table with the other state
tables (message positions change).  The row is written when it changed, best-effort: a busy cache leaves
it for the next read.
"""
from __future__ import annotations

import marshal
import sqlite3
from typing import TYPE_CHECKING

from handoff.index.lazy import State
from handoff.index.narrow import kept_state

if TYPE_CHECKING:
    from handoff.store.place import Place


def for_inbox_unacked(state: dict, session: dict, ws: Place) -> tuple[dict, set[str]]:
    """What ``narrow.for_inbox(state, session, skip=acked)`` gives, and the acked ids ``queries.inbox``
    needs with it (those of the candidates it is handed, at least), without reading the whole acks file."""
    from handoff.index.narrow import for_inbox
    from handoff.store import local
    sid = session["session_id"]
    if not isinstance(state, State):
        acked = local.read_acks(ws, sid)
        return for_inbox(state, session, skip=acked), acked
    db = state.db
    ino, size = local.acks_file_id(ws, sid)
    count = len(state["messages"])
    key = marshal.dumps((session["peer_id"], session["agent"], sorted(session.get("channels") or []),
                         session.get("opened_hlc", "")))
    saved = _saved(db, sid)
    if saved is not None and saved[0] == key and saved[1] == ino and saved[2] <= size and saved[4] <= count:
        _key, _ino, upto, floor, n0, tail = saved
        upto, new = local.read_acks_from(ws, sid, upto)
        acked = tail | set(new)
    else:
        upto, new = local.read_acks_from(ws, sid, 0)
        acked, floor, n0, tail = set(new), "", count, set()
    cands = _candidates(db, session, floor, n0)
    unacked = [hlc for _o, mid, hlc in cands if mid not in acked]
    if unacked and min(unacked) < floor:  # a late message below the floor: keep the floor as it was
        new_floor, new_n0 = floor, n0
    else:
        new_floor = min(unacked) if unacked else max([floor] + [hlc for _o, _m, hlc in cands])
        new_n0 = count
    below = {mid for o, mid, hlc in cands if hlc < new_floor and o < new_n0}
    new_tail = acked - below
    if saved is None or (key, ino, upto, new_floor, new_n0, new_tail) != saved:
        _save(db, sid, key, ino, upto, new_floor, new_n0, new_tail)
    keep = {o: mid for o, mid, _hlc in cands if mid not in acked}
    return kept_state(state, session, keep), acked


def _candidates(db: sqlite3.Connection, session: dict, floor: str, n0: int) -> list[tuple[int, str, str]]:
    """(ord, id, hlc) of the messages ``queries.inbox`` may show this session (not its own) with
    ``hlc >= floor``, and of those folded at or after position ``n0``, in position order."""
    peer = session["peer_id"]
    chans = list(session.get("channels") or [])
    marks = ",".join("?" * len(chans))
    opened = session.get("opened_hlc", "")
    to = (peer, session["session_id"], session["agent"])
    out: dict[int, tuple[int, str, str]] = {}
    queries = [("SELECT ord, id, frm, hlc FROM messages WHERE to_ IN (?,?,?) AND hlc>=?", (*to, floor)),
               (f"SELECT ord, id, frm, hlc FROM messages WHERE to_ IS NULL AND surface='thread' "
                f"AND channel IN ({marks}) AND hlc>=?", (*chans, max(opened, floor)))]
    for sql, args in queries:
        for o, mid, frm, hlc in db.execute(sql, args):
            if frm != peer:
                out[o] = (o, mid, hlc or "")
    # (by position alone: with the conditions in SQL the planner walks both indexes whole)
    for o, mid, frm, hlc, to_, surface, channel in db.execute(
            "SELECT ord, id, frm, hlc, to_, surface, channel FROM messages WHERE ord>=?", (n0,)):
        if frm != peer and (to_ in to or (to_ is None and surface == "thread" and channel in chans
                                          and (hlc or "") >= opened)):
            out[o] = (o, mid, hlc or "")
    return [out[o] for o in sorted(out)]


def _saved(db: sqlite3.Connection, sid: str) -> tuple | None:
    try:
        row = db.execute("SELECT k, ino, upto, floor, n0, tail FROM ackfloor WHERE sid=?", (sid,)).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    return (row[0], row[1], row[2], row[3], row[4], set(marshal.loads(row[5])))


def _save(db: sqlite3.Connection, sid: str, key: bytes, ino: int, upto: int, floor: str, n0: int,
          tail: set[str]) -> None:
    """Best-effort: a cache another process is writing is left as it is (the next read tries again)."""
    was_reading = db.in_transaction
    try:
        if was_reading:
            db.execute("COMMIT")
        db.execute("PRAGMA busy_timeout=50")
        db.execute("BEGIN")
        db.execute("INSERT OR REPLACE INTO ackfloor VALUES (?,?,?,?,?,?,?)",
                   (sid, key, ino, upto, floor, n0, marshal.dumps(sorted(tail))))
        db.execute("COMMIT")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
    finally:
        from handoff.index.conn import BUSY_MS
        db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        if was_reading and not db.in_transaction:
            db.execute("BEGIN")
