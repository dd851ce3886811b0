"""Folding everything again from the parse cache, without parsing: a removed file, a branch switch, an
event that sorts earlier.

Memory stays flat in the number of events: events are ordered by their keys (``okey``: id, clock,
parents), then read back from the parse cache in event order, a batch at a time, folded, and their
message rows written as they come.  The result is what ``reducer.reduce`` gives.
"""
from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterator

from handoff.core import reducer
from handoff.index import stats
from handoff.index.db import STATE_INDEXES, STATE_TABLES, py_path
from handoff.index.fold import Rows
from handoff.index.records import record_of
from handoff.index.save import MessageSink, future_horizon, latest_ms, save_fold
from handoff.index.sources import is_remote


def refold(db: sqlite3.Connection, stamps: dict, admins: list[str], policy: dict | None = None) -> None:
    """Fold every file again from the parse cache (the file table must be up to date)."""
    found, groups = _gather(db)
    _settle_clashes(db, found, groups)  # (ids used by several files)
    del groups
    stats.trace(f"keys {len(found.keys)}")
    order, cyclic = reducer.order_keys(found.keys)
    stats.trace("order")
    for eid in cyclic:
        path = found.special[eid][1] if eid in found.special else _parsed_rows(db, [found.where[eid]])[found.where[eid]][0]
        found.diagnostics.append({"path": path, "id": eid, "reason_code": "malformed",
                                  "message": "causal links (after) form a cycle; ordered by clock instead"})
    for name in STATE_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {name}")
    for ddl in STATE_TABLES.values():
        db.execute(ddl)
    stats.trace("drop")
    acc, stream = _fold_all(db, found, order, admins, policy)
    stats.trace("fold")
    _save_all(db, found, acc, stream, stamps, cyclic=bool(cyclic))
    stats.trace("rows")
    for ddl in STATE_INDEXES:
        db.execute(ddl)
    stats.trace("indexes")


class _Found:
    """What the file table and the parse cache say of every event, before any is loaded."""

    def __init__(self) -> None:
        self.diagnostics: list[dict] = []
        self.keys: dict[str, tuple] = {}  # id -> (hlc, after): what ordering needs
        self.where: dict[str, int] = {}  # id -> the parse-cache row it is read back from (its path is the file's)
        self.special: dict[str, tuple[dict, str, str]] = {}  # id -> (event, path, blob): the few held in memory
        self.opens: set = set()  # ids of session-open events
        self.src_of: dict[str, str] = {}  # id -> the source ("remote:<ref>") of its first file, where not the work tree
        self.conflicted: set = set()  # paths two sources hold with different bytes: such messages keep their own copy


def _gather(db: sqlite3.Connection) -> tuple[_Found, dict[str, list[tuple]]]:
    """Every file's event keys (its record only where the parse cache's key cannot be used), and the ids
    found in more than one file: id -> each ("q"|"f"|"s", where, source)."""
    found = _Found()
    diagnostics, keys, where, special, opens = found.diagnostics, found.keys, found.where, found.special, found.opens
    src_of, conflicted = found.src_of, found.conflicted
    groups: dict[str, list[tuple]] = {}
    src_blob: dict[str, str] = {}  # path -> the blob of the first source's file there
    rows = db.execute(
        "SELECT f.rowid, f.src, f.path, f.problem, f.blob, q.path, q.okey, q.rowid FROM files f "
        "LEFT JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob WHERE f.src='' UNION ALL "
        "SELECT f.rowid, f.src, f.path, f.problem, f.blob, q.path, q.okey, q.rowid FROM files f "
        "LEFT JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob "
        "WHERE f.src!='' AND f.path NOT IN (SELECT path FROM files WHERE src='')")
    loads = marshal.loads
    for rowid, src, path, problem, b, ppath, okey, prow in rows:
        if problem:
            diagnostics.append({"path": py_path(path), "id": None, "reason_code": "malformed", "message": problem})
            continue
        if ppath is None:
            continue  # (not in the parse cache: nothing was read)
        if src:
            if src_blob.setdefault(path, b) != b:
                conflicted.add(py_path(path))
        held = None
        if okey is None or ppath != path:  # not an event, or the same bytes seen under another path
            rec = record_of(py_path(path), None, py_path(ppath),
                            db.execute("SELECT rec FROM p.parsed WHERE rowid=?", (prow,)).fetchone()[0])
            if "error" in rec:
                diagnostics.append({"path": rec["path"], "id": None, **rec["error"]})
                continue
            ev = rec["event"]
            eid, hlc, after, is_open = ev["id"], ev["hlc"], tuple(ev.get("after") or ()), ev["kind"] == "session-open"
            held = (ev, rec["path"], b)
        else:
            eid, hlc, after, is_open = loads(okey)
        if eid in keys:
            first = ("s", special[eid]) if eid in special else ("q", where[eid])
            groups.setdefault(eid, [(*first, src_of.get(eid, ""))]).append(("f", rowid, src))
            continue
        if is_remote(src):
            src_of[eid] = src
        keys[eid] = (hlc, after or None)
        if held is None:
            where[eid] = prow
        else:
            special[eid] = held
        if is_open:
            opens.add(eid)
    return found, groups


def _settle_clashes(db: sqlite3.Connection, found: _Found, groups: dict[str, list[tuple]]) -> None:
    """For each id used by several files, the reducer's own dedupe picks the one applied (and names the
    clash); that event is then held in memory."""
    for eid, members in groups.items():
        recs, blob_of = [], {}
        for how, ref, src in members:
            if how == "s":
                ev, path, b = ref
                recs.append({"path": path, "event": ev})
            else:
                (path, b, ppath, rec), = (_rows_by_id(db, [ref]) if how == "f" else _parsed_rows(db, [ref])).values()
                recs.append(record_of(path, None, ppath, rec))
            if is_remote(src):
                recs[-1] = dict(recs[-1], ref=src.split(":", 1)[-1])
            blob_of[path] = b
        kept, kept_paths = reducer.dedupe(recs, found.diagnostics)
        ev = kept[0]
        if any("ref" in r and r["path"] == kept_paths[eid] for r in recs):
            found.src_of[eid] = next(src for _how, _ref, src in members if is_remote(src))
        else:
            found.src_of.pop(eid, None)
        found.special[eid] = (ev, kept_paths[eid], blob_of[kept_paths[eid]])
        found.keys[eid] = (ev["hlc"], tuple(ev.get("after") or ()) or None)
        (found.opens.add if ev["kind"] == "session-open" else found.opens.discard)(eid)


def _fold_all(db: sqlite3.Connection, found: _Found, order: list[str],
              admins: list[str], policy: dict | None = None) -> tuple[dict, _EventStream]:
    """Fold the events in ``order`` as they are read back, message rows written as they come."""
    stream = _EventStream(db, order, found.where, found.special, found.conflicted)
    acc = reducer.new_fold(admins, policy)
    acc["diagnostics"] = found.diagnostics
    acc["messages"] = _StreamSink(db, stream.blobs)
    acc["threads"] = Rows(lambda key: None)
    acc["directs"] = Rows(lambda key: None)
    acc["work"] = Rows(lambda key: None)
    open_order = reducer.local_first([eid for eid in order if eid in found.opens], found.src_of.__contains__)
    identities = list(_EventStream(db, open_order, found.where, found.special, found.conflicted))
    reducer.fold(acc, stream, stream.paths, identities=identities)
    return acc, stream


def _save_all(db: sqlite3.Connection, found: _Found, acc: dict, stream: _EventStream, stamps: dict,
              cyclic: bool) -> None:
    """What ``save_fold`` would take from a list of the events was gathered on the way: write the per-event
    tables here and hand it the totals (as if extending an empty state by nothing); it writes the rest."""
    keys = found.keys
    sink = acc["messages"]
    sink.flush()
    ords = sink.ords
    db.executemany("INSERT INTO events VALUES (?,?)", ((eid, ords.get(eid)) for eid in keys))
    db.executemany("INSERT INTO peers VALUES (?)", [(n,) for n in stream.names])
    dangling = {p for _hlc, after in keys.values() if after for p in after if p not in keys}
    db.executemany("INSERT INTO dangling VALUES (?)", [(p,) for p in sorted(dangling)])
    top = max(((hlc, eid) for eid, (hlc, _a) in keys.items()), default=None)
    base: dict = {"sessions": {}, "agent_by_peer": {}, "counters": {}, "diagnostics": [],
            "max_hlc": max((hlc for hlc, _a in keys.values() if hlc), default=None), "event_count": len(keys),
            "messages": 0, "leases": 0, "frontier": list(top) if top else None,
            "future": sorted(stream.future, key=lambda f: f["event"]["id"])}
    save_fold(db, base, acc, [], stamps, blobs={}, cyclic=cyclic, full=True, paths_of={})


def _rows_by_id(db: sqlite3.Connection, rowids: list[int]) -> dict[int, tuple]:
    """rowid -> (path, blob, parse-cache path, record bytes) of these files rows."""
    return {r: (py_path(p), b, py_path(pp), rec) for r, p, b, pp, rec in db.execute(
        "SELECT f.rowid, f.path, f.blob, q.path, q.rec FROM files f "
        "JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob "
        f"WHERE f.rowid IN ({','.join('?' * len(rowids))})", rowids)}


def _parsed_rows(db: sqlite3.Connection, rowids: list[int]) -> dict[int, tuple]:
    """rowid -> (path, blob, path, record bytes) of these parse-cache rows (read where the path is the file's)."""
    out = {}
    for r, p, b, rec in db.execute(f"SELECT rowid, path, blob, rec FROM p.parsed WHERE rowid IN "
                                   f"({','.join('?' * len(rowids))})", rowids):
        p = py_path(p)
        out[r] = (p, b, p, rec)
    return out


class _EventStream:
    """Events in the given order, read back from the parse cache a batch at a time (re-iterable).

    ``paths`` (id -> path) and ``blobs`` (path -> blob, "" for a path two sources disagree on) hold the
    current batch only: the fold asks them about the event it is folding.  As events pass, it notes what
    the saved state needs of all of them (peer names, parents, events dated ahead).
    """

    BATCH = 500

    def __init__(self, db: sqlite3.Connection, order: list[str], where: dict, special: dict, conflicted: set):
        self.db, self.order, self.where, self.special, self.conflicted = db, order, where, special, conflicted
        self.paths: dict[str, str] = {}
        self.blobs: dict[str, str] = {}
        self.names: set = set()
        self.future: list[dict] = []

    def __iter__(self) -> Iterator[dict]:
        loads = marshal.loads
        horizon, horizon_ts, horizon_hlc, horizon_id = future_horizon()
        names, future, paths, blobs = self.names, self.future, self.paths, self.blobs
        for i in range(0, len(self.order), self.BATCH):
            chunk = self.order[i:i + self.BATCH]
            want = [self.where[eid] for eid in chunk if eid not in self.special]
            got = _parsed_rows(self.db, want) if want else {}
            paths.clear()
            blobs.clear()
            for eid in chunk:
                if eid in self.special:
                    ev, path, blob = self.special[eid]
                else:
                    path, blob, _pp, rec = got[self.where[eid]]
                    ev = loads(rec)["event"]
                paths[eid] = path
                blobs[path] = "" if path in self.conflicted else blob
                names.add(ev["from"])
                for key in ("to", "session_id"):
                    if isinstance(ev.get(key), str):
                        names.add(ev[key])
                if ((str(ev.get("hlc"))[:16] > horizon_hlc or str(ev.get("ts")) > horizon_ts
                     or eid.split("_", 1)[-1][:10] > horizon_id) and latest_ms(ev) > horizon):
                    future.append({"path": path, "event": {"id": eid, "hlc": ev.get("hlc"), "ts": ev.get("ts")}})
                yield ev


class _StreamSink:
    """The message sink of a full fold: rows go to the (fresh) messages table every few thousand."""

    FLUSH = 2000

    def __init__(self, db: sqlite3.Connection, blobs: dict[str, str]):
        self.db = db
        self.sink = MessageSink(0, blobs)
        self.ords = self.sink.ords

    @property
    def rows(self) -> list[tuple]:
        return self.sink.rows

    def append(self, m: dict) -> None:
        sink = self.sink
        sink.append(m)
        if len(sink.rows) >= self.FLUSH:
            self.flush()

    def insert(self, db: sqlite3.Connection) -> None:
        self.sink.insert(db)  # (what is left after the last flush: nothing, as ``_save_all`` flushes first)

    def flush(self) -> None:
        sink = self.sink
        sink.insert(self.db)
        sink.first_ord += len(sink.rows)
        sink.rows, sink.answers = [], []

    def __len__(self) -> int:
        return self.sink.first_ord + len(self.sink.rows)
