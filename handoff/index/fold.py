"""Folding new records onto the saved state, when they all sort after it (the usual case: new writes, pulls).

Only the rows the new events can touch are read (sessions, work units, rooms), folded by
``reducer.fold`` as if the whole state were in memory, and written back by ``save.save_fold``.
"""
from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from handoff.core import reducer
from handoff.index.db import get_meta
from handoff.index.save import MessageSink, save_fold


class Rows(dict):
    """A dict that loads missing keys from a table on ``get``; what it holds afterwards was touched."""

    def __init__(self, load: Callable[[str], dict | None]):
        super().__init__()
        self._load = load
        self._absent: set = set()
        self.loaded: set = set()

    def get(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self._absent:
            return default
        value = self._load(key)
        if value is None:
            self._absent.add(key)
            return default
        dict.__setitem__(self, key, value)
        self.loaded.add(key)
        return value

    def __setitem__(self, key, value):
        self._absent.discard(key)
        dict.__setitem__(self, key, value)

    def prime(self, found: dict, asked: Iterable) -> None:
        """Rows read ahead in bulk: ``found`` as if loaded one by one, the rest of ``asked`` absent."""
        for key in asked:
            if dict.__contains__(self, key) or key in self._absent:
                continue
            if key in found:
                dict.__setitem__(self, key, found[key])
                self.loaded.add(key)
            else:
                self._absent.add(key)


def _any_in(db: sqlite3.Connection, table: str, ids: list[str]) -> bool:
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        if db.execute(f"SELECT 1 FROM {table} WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1",
                      chunk).fetchone():
            return True
    return False


def extend(db: sqlite3.Connection, records: list[dict], stamps: dict, blobs: dict[str, str],
           admins: list[str], policy: dict | None = None) -> bool:
    """Fold new records onto the saved state if they all sort after it; False if a full fold is needed."""
    acc0 = marshal.loads(get_meta(db, "acc"))
    if acc0.get("cyclic"):
        return False
    if not records:  # only the file table changed (files touched, or re-hashed while racy)
        acc0["stamps"] = stamps
        db.executemany("INSERT OR REPLACE INTO main.meta VALUES (?, ?)",
                       [("acc", marshal.dumps(acc0)), ("stamps", marshal.dumps(stamps)),
                        ("gen", (get_meta(db, "gen") or 0) + 1)])
        return True
    diagnostics = [{"path": r["path"], "id": None, **r["error"]} for r in records if "error" in r]
    events = [r["event"] for r in records if "event" in r]
    if not _all_after(db, acc0, events):
        return False
    sessions, saved_sessions = _load_sessions(db, events)
    if not _opens_are_new(db, events, sessions):
        return False
    paths = {r["event"]["id"]: r["path"] for r in records if "event" in r}
    ordered, cyclic = reducer.order_events(events)
    if cyclic:
        return False
    saved_work: dict[str, tuple] = {}  # wid -> (box, open, opener, data) as read
    acc = _resumed(db, acc0, sessions, saved_work, blobs=blobs, diagnostics=diagnostics, admins=admins,
                   policy=policy)
    _prefetch(db, acc, events, saved_work)
    reducer.fold(acc, ordered, paths)
    save_fold(db, acc0, acc, events, stamps, blobs=blobs, paths_of=paths, saved_sessions=saved_sessions,
              saved_work=saved_work)
    return True


def _all_after(db: sqlite3.Connection, acc0: dict, events: list[dict]) -> bool:
    """The events have distinct new ids, sort after everything folded, and no folded event waits for them."""
    ids = [ev["id"] for ev in events]
    if len(set(ids)) != len(ids):
        return False
    frontier = acc0.get("frontier")
    if frontier is not None and any((ev["hlc"], ev["id"]) <= tuple(frontier) for ev in events):
        return False  # an event sorts before what is already folded
    if _any_in(db, "events", ids):
        return False  # a duplicate id: the reducer's dedupe decides
    if _any_in(db, "dangling", ids):
        return False  # an event already folded named one of these as its parent: the order changes
    return True


def _opens_are_new(db: sqlite3.Connection, events: list[dict], sessions: dict[str, dict]) -> bool:
    """The sessions the events open are neither open already nor mentioned by events already folded."""
    if any(ev["kind"] == "session-open" and ev["session_id"] in sessions for ev in events):
        return False  # a second open of an id: which one owns it may depend on where each file is (refold)
    opened = [x for ev in events if ev["kind"] == "session-open" and ev["session_id"] not in sessions
              for x in (ev["from"], ev["session_id"])]
    return not _any_in(db, "peers", opened)  # (events already folded mention a session only now opened)


def _resumed(db: sqlite3.Connection, acc0: dict, sessions: dict[str, dict], saved_work: dict[str, tuple], *,
             blobs: dict[str, str], diagnostics: list[dict], admins: list[str], policy: dict | None = None) -> dict:
    """The fold's accumulator over the saved state: work units and rooms load from their tables when the
    fold asks for them (``saved_work`` keeps each work unit's row as read)."""

    def load_work(wid: str) -> dict | None:
        row = db.execute("SELECT box, open, opener, data FROM work WHERE wid=?", (wid,)).fetchone()
        if row is None:
            return None
        saved_work[wid] = row
        return marshal.loads(row[3])

    def load_box(kind: str) -> Callable[[str], dict | None]:
        def load(key: str) -> dict | None:
            row = db.execute("SELECT data FROM boxes WHERE kind=? AND key=?", (kind, key)).fetchone()
            if row is None:
                return None
            box = marshal.loads(row[0])
            box["participants"] = set(box["participants"])
            return box
        return load

    agents = marshal.loads(get_meta(db, "agents"))
    return {"sessions": sessions, "agent_by_peer": agents, "messages": MessageSink(acc0["messages"], blobs),
            "threads": Rows(load_box("thread")), "directs": Rows(load_box("direct")), "work": Rows(load_work),
            "leases": [], "diagnostics": diagnostics, "counters": acc0["counters"], "admins": admins,
            "approvals": reducer.new_fold((), policy)["approvals"]}


def _load_sessions(db: sqlite3.Connection, events: list[dict]) -> tuple[dict[str, dict], dict[str, bytes]]:
    """The sessions a fold of ``events`` can look at, in fold order; and each one's row as it was read.

    ``reducer.fold`` finds an event's session by its ``session_id``, else by its sender's peer id (the
    last session of that peer wins), and opens a session only when its id is not taken: the sessions
    named by the events or belonging to their senders are all it can see, so only those are read.
    """
    sids = sorted({ev["session_id"] for ev in events if isinstance(ev.get("session_id"), str)})
    peers = sorted({ev["from"] for ev in events if isinstance(ev.get("from"), str)})
    rows: dict[int, tuple[str, bytes]] = {}
    for col, keys in (("sid", sids), ("peer", peers)):
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for seq, sid, data in db.execute(
                    f"SELECT seq, sid, data FROM sessions WHERE {col} IN ({','.join('?' * len(chunk))})", chunk):
                rows[seq] = (sid, data)
    saved = dict(rows[k] for k in sorted(rows))
    loads = marshal.loads
    return {sid: loads(data) for sid, data in saved.items()}, saved


def _prefetch(db: sqlite3.Connection, acc: dict, events: list[dict], saved_work: dict[str, tuple]) -> None:
    """Read the work units and rooms the events name in a few queries, not one per event (``saved_work``:
    each work unit's row as read)."""
    wids = sorted({ev["work_id"] for ev in events if isinstance(ev.get("work_id"), str)})
    threads, directs = set(), set()
    for ev in events:
        if ev.get("surface") == "thread":
            threads.add(f"{ev.get('channel')}/{ev.get('thread_id')}")
        elif isinstance(ev.get("direct_id"), str):
            directs.add(ev["direct_id"])
    loads = marshal.loads
    found = {}
    for i in range(0, len(wids), 500):
        chunk = wids[i:i + 500]
        for wid, *row in db.execute(f"SELECT wid, box, open, opener, data FROM work WHERE wid IN "
                                    f"({','.join('?' * len(chunk))})", chunk):
            saved_work[wid] = tuple(row)
            found[wid] = loads(row[3])
    acc["work"].prime(found, wids)
    for rows, sql, keys, pre, fix in (
            (acc["threads"], "SELECT key, data FROM boxes WHERE kind=? AND key IN ({})", sorted(threads), ("thread",),
             "participants"),
            (acc["directs"], "SELECT key, data FROM boxes WHERE kind=? AND key IN ({})", sorted(directs), ("direct",),
             "participants")):
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for key, data in db.execute(sql.format(",".join("?" * len(chunk))), (*pre, *chunk)):
                value = loads(data)
                if fix:
                    value[fix] = set(value[fix])
                found[key] = value
        rows.prime(found, keys)
