"""Reading through the index: this thread's ``Index`` of a workspace, brought up to date on each read.

``Workspace.state()`` reads through ``state()``; ``note_written`` caches what the writer just wrote,
``drop`` and ``recover`` deal with a cache that cannot be used.
"""
from __future__ import annotations

import marshal
import sqlite3
import time
from typing import TYPE_CHECKING

from handoff.core import reducer
from handoff.index import stats
from handoff.index.conn import Cache
from handoff.index.db import (
    gc_paused,
    get_meta,
    maybe_lock,
    note_rebuilt,
    py_path,
    remove_all,
    trouble,
    unreadable,
    write_txn,
)
from handoff.index.lazy import State
from handoff.index.records import blob_id, okey, record_of, store_parsed
from handoff.index.scan import Plan, scan_tree
from handoff.index.sources import ARCHIVE_SOURCE, SOURCES, Source
from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.store.place import Place


def state(ws: Place, now_ms: int | None = None) -> State:
    """The reduced state of the workspace's event files (plus any extra sources), from the index.

    With ``now_ms``, ``diagnostics`` also holds ``reducer.clock_diagnostics`` for that moment (events
    dated more than a day ahead), as ``Workspace.state`` always reported them.
    """
    st = open_index(ws).state()
    st.now_ms = now_ms
    return st


def load_records(ws: Place) -> list[dict]:
    """Every decoded record (``{"path", "event"}`` or ``{"path", "error"}``): the work tree's and the
    archive's from the parse cache, then those on remote-tracking branches (``remotes``; they carry ``ref``)."""
    from handoff.git.remotes import remote_records
    out = open_index(ws).records()
    return out + remote_records(ws, {r["path"] for r in out})


def read_all_records(ws: Place) -> list[dict]:
    """Every record read and parsed straight from the files and archive segments, no cache (the reference
    the index must match)."""
    out = []
    for rel, st, problem in store.list_event_files(ws.root):
        if problem:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"{problem}: not read"}})
            continue
        try:
            data = store.read_event_file(ws.root, rel, st)
        except OSError as exc:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"unreadable: {exc}"}})
            continue
        out.append(reducer.decode(rel, data))
    from handoff.store import archive
    local = {r["path"] for r in out}
    out += [reducer.decode(rel, data) for rel, _blob, data in archive.entries(ws.root) if rel not in local]
    return out


def note_written(ws: Place, items: list[tuple[str, bytes, dict]]) -> None:
    """The writer published these files (path under .handoffs/, bytes, event): cache their parse."""
    try:
        open_index(ws).seed(items)
    except Exception:  # the cache is a convenience: never let it fail a write
        pass


def drop(ws: Place) -> None:
    """Delete the whole index (it is rebuilt on next use)."""
    for idx in list(ws.__dict__.get("_indexes", {}).values()):
        idx.close()
    remove_all(ws.paths.shared / "cache")


def recover(ws: Place, exc: BaseException) -> None:
    """A command failed reading the cache (``trouble(exc)`` is not None): close it, and when the files
    are damaged drop them and say so, so that the command can run once more on a fresh build."""
    kind = trouble(exc)
    if kind == "damaged":
        drop(ws)
        note_rebuilt(ws.paths.shared / "cache", exc)
    else:
        for idx in list(ws.__dict__.get("_indexes", {}).values()):
            idx.close()


def open_index(ws: Place) -> Index:
    """This thread's index of ``ws`` (a SQLite connection must not be shared by threads at once)."""
    import threading
    indexes = ws.__dict__.setdefault("_indexes", {})
    key = threading.get_ident()
    idx = indexes.get(key)
    if idx is None:
        if len(indexes) > 32:  # threads come and go (watchers, servers): forget the oldest
            indexes.pop(next(iter(indexes)))
        idx = indexes[key] = Index(ws)
    return idx


class Index(Cache):
    """A workspace's index, for one thread: reading the state, refreshed first when files changed."""

    def state(self) -> State:
        for attempt in range(3):
            try:
                return self._fresh_state()
            except (sqlite3.Error, ValueError, EOFError, TypeError, KeyError) as exc:
                kind = trouble(exc)
                if kind is None:
                    raise
                if attempt == 2:
                    if not isinstance(exc, sqlite3.Error):
                        raise  # (bytes still unreadable in a cache built afresh: a bug, not damage)
                    raise unreadable(exc) from None
                self.close()
                if kind == "damaged":
                    self.repair(exc)  # not a database, or a damaged one: it is only a cache
                elif kind != "gone" or attempt:
                    # A full disk, a read-only or locked-up cache (or files gone twice): answer from memory
                    # this time, delete nothing (see ``trouble``).
                    self.db = self.connect_memory()
        raise AssertionError("unreachable")

    def _fresh_state(self) -> State:
        db = self.connect()
        if db.in_transaction:
            db.execute("COMMIT")  # a new read: end the previous snapshot
        self.retry_wal(db)
        db.execute("BEGIN")
        plan = self._plan(db)
        if plan is None:
            return self._make_state(db)
        db.execute("COMMIT")
        with maybe_lock(self.lock_path):
            db.execute("BEGIN IMMEDIATE")
            try:
                if get_meta(db, "gen") != plan.gen:
                    plan = self._plan(db)  # someone folded meanwhile: look again
                if plan is not None:
                    from handoff.index.apply import apply  # (only when something changed: off the warm path)
                    with gc_paused():
                        apply(db, plan, self.root, self.admins, self.approvals)
                db.execute("COMMIT")
                stats.trace("commit")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if self.wal_pending:  # (readers that waited for this build may hold the file a moment longer)
            self.retry_wal(db, wait_ms=2000)
            stats.trace("wal")
        db.execute("BEGIN")
        return self._make_state(db)

    def _make_state(self, db: sqlite3.Connection) -> State:
        """The state as of the open read transaction, which stays open while the state is read (one
        snapshot).  Not so for a file still in rollback-journal mode: there a held read would stall every
        writer (a long-lived process would for minutes), so each read of the state is its own snapshot."""
        if self.wal_pending and db.in_transaction:
            db.execute("COMMIT")
        state = State(db, marshal.loads(get_meta(db, "acc")))  # (read once per command)
        state.owner = self  # the connection lives as long as a state that reads through it
        return state

    def records(self) -> list[dict]:
        """The work tree's records and the archive's (remote refs' records come from their own modules)."""
        self.state()
        db = self.connect()
        rows = db.execute("SELECT f.path, f.problem, q.path, q.rec FROM files f LEFT JOIN p.parsed q "
                          "ON q.path = f.path AND q.blob = f.blob WHERE f.src='' OR (f.src=? AND f.path NOT IN "
                          "(SELECT path FROM files WHERE src='')) ORDER BY f.path", (ARCHIVE_SOURCE,)).fetchall()
        return [record_of(py_path(path), problem, py_path(ppath), rec) for path, problem, ppath, rec in rows if problem or rec]

    def seed(self, items: list[tuple[str, bytes, dict]]) -> None:
        """Parse and keep the files we just wrote, so the next refresh finds them in the cache."""
        db = self.connect()
        rows = []
        for rel, data, _ev in items:
            rec = reducer.decode(rel, data)
            rows.append((blob_id(data), rel, marshal.dumps(rec), okey(rec)))
        with write_txn(db):
            store_parsed(db, [(rel, b, rec, key) for b, rel, rec, key in rows])

    def _plan(self, db: sqlite3.Connection) -> Plan | None:
        """What changed since the view was last folded (None: nothing)."""
        stats.trace("start")
        plan = Plan()
        plan.gen = get_meta(db, "gen")
        now = time.time_ns()
        if plan.gen is None:
            plan.cold = True
            plan.scan = scan_tree(self.root, {}, now)
        else:
            known_dirs = {py_path(p): m for p, m in db.execute("SELECT path, mtime FROM dirs")}
            plan.scan = scan_tree(self.root, known_dirs, now, db)
            plan.stamps = marshal.loads(get_meta(db, "stamps") or marshal.dumps({}))
        plan.sources = []
        for fn in SOURCES:
            try:
                src = fn(self.ws)
            except Exception:
                src = None
            if isinstance(src, Source):
                plan.sources.append(src)
            elif src:
                plan.sources.extend(src)
        plan.new_stamps = {s.name: s.stamp for s in plan.sources}
        if not plan.cold and not plan.scan.changed and plan.new_stamps == plan.stamps:
            return None
        return plan
