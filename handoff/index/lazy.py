"""The state, read lazily: a dict equal to ``reducer.reduce``'s whose parts load from their tables when asked.

Sessions, messages, work units, threads, direct rooms and leases are read one row by key, or all; the
questions the write checks and views ask (a message id, a peer's session, open units) go to the
tables' indexes instead of a full scan.
"""
from __future__ import annotations

import marshal
import sqlite3
from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from typing import Any

from handoff.core import model, reducer


class State(dict):
    """The reduced state, as ``reducer.reduce`` returns it, loaded from the index on first access.

    Counters and diagnostics are small and loaded at once; sessions, messages, work units, threads,
    direct rooms and leases are read from their tables when asked for (one row by key, or all).
    It is a dict so that ``json.dumps(state)`` and ``isinstance(state, dict)`` keep working: ``items()``
    and ``values()`` hand out plain lists and dicts (everything loaded), ``state[key]`` the lazy parts.
    """

    _KEYS = ("reducer_version", "sessions", "messages", "threads", "directs", "work", "leases", "diagnostics",
             "counters", "max_hlc", "event_count")

    def __init__(self, db: sqlite3.Connection, acc: dict):
        # (the underlying dict only holds the keys: C code that asks a dict subclass for its size -- json's
        # fast path for {} -- must not see it empty; every Python-level access goes through the methods)
        super().__init__(dict.fromkeys(self._KEYS))
        self.db = db
        self._acc = acc
        self._cache: dict = {}
        self.now_ms: int | None = None  # (``diagnostics`` then holds the events dated ahead of it)
        self.owner: object = None  # what keeps the connection open: it lives as long as a state reading through it

    def __getitem__(self, key):
        if key in self._cache:
            return self._cache[key]
        acc = self._acc
        if key == "reducer_version":
            value = reducer.REDUCER_VERSION
        elif key == "diagnostics":
            value = acc["diagnostics"]
            future = reducer.clock_diagnostics(self._future(), self.now_ms) if self.now_ms else []
            if future:
                value = sorted(value + future, key=reducer.diagnostic_key)
        elif key in ("counters", "max_hlc", "event_count"):
            value = acc[key]
        elif key == "sessions":
            value = Sessions(self.db)
        elif key == "messages":
            value = Messages(self.db, acc["messages"])
        elif key == "threads":
            value = Boxes(self.db, "thread")
        elif key == "directs":
            value = Boxes(self.db, "direct")
        elif key == "work":
            value = WorkUnits(self.db)
        elif key == "leases":
            value = [marshal.loads(r[0]) for r in self.db.execute("SELECT data FROM leases ORDER BY ord")]
        else:
            raise KeyError(key)
        if isinstance(value, (Messages, Table)):
            value._owner = self.owner  # its connection outlives the state it came from
        self._cache[key] = value
        return value

    def _future(self) -> list[dict]:
        """The events ``clock_diagnostics`` can report at ``now_ms``: only those dated past its tolerance
        (table ``future``, by its index), not every recent event."""
        assert self.now_ms is not None
        rows = self.db.execute("SELECT id, path, hlc, ts FROM future WHERE latest>?",  # (ORDER BY id: a scan)
                               (self.now_ms + reducer.FUTURE_TOLERANCE_MS,)).fetchall()
        return [{"path": path, "event": {"id": eid, "hlc": hlc, "ts": ts}} for eid, path, hlc, ts in sorted(rows)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __contains__(self, key) -> bool:
        return key in self._KEYS

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._KEYS else default

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self._KEYS)

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        return self.materialize().items()

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        return self.materialize().values()

    def __eq__(self, other) -> bool:
        return self.materialize() == (other.materialize() if isinstance(other, State) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"<handoff index state: {self._acc.get('event_count', 0)} events>"

    def __reduce__(self):
        return (dict, (self.materialize(),))

    def materialize(self) -> dict:
        """A plain dict equal to ``reducer.reduce`` of the same files (tests, debugging)."""
        out = {}
        for k in self._KEYS:
            v = State.__getitem__(self, k)
            if isinstance(v, Messages):
                v = list(v)
            elif isinstance(v, Table):
                v = dict(v.items())
            out[k] = v
        return out

    def narrowed(self, **parts) -> dict:
        """A plain state dict whose given parts (e.g. ``messages=[...]``) replace the full ones.

        For views that only look at some messages: pass exactly the messages they would keep.
        """
        out = {k: self[k] for k in self._KEYS if k not in parts}
        out.update(parts)
        return out


_MSG_SQL = ("SELECT m.path, m.refused, q.rec, m.data FROM messages m "
            "LEFT JOIN p.parsed q ON q.path = m.path AND q.blob = m.blob "
            "WHERE {where} ORDER BY m.ord")


def _messages(db: sqlite3.Connection, where: str, args: tuple | list) -> list[dict]:
    loads = marshal.loads
    return [dict(loads(rec)["event"], path=path, refused=refused) if data is None else loads(data)
            for path, refused, rec, data in db.execute(_MSG_SQL.format(where=where), args)]


class Messages(Sequence):
    """Messages in event order; indexing and slicing read only the rows asked for."""

    def __init__(self, db: sqlite3.Connection, count: int):
        self._db, self._count = db, count
        self._all: list | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        if self._all is not None:
            return self._all[i]
        if isinstance(i, slice):
            start, stop, step = i.indices(self._count)
            if step != 1:
                return list(self)[i]
            return _messages(self._db, "m.ord>=? AND m.ord<?", (start, stop))
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(i)
        return _messages(self._db, "m.ord=?", (i,))[0]

    def __iter__(self):
        if self._all is None:
            self._all = _messages(self._db, "1", ())
        return iter(self._all)

    def where(self, sql: str, args: tuple) -> list[dict]:
        """Messages matching a condition on the indexed columns (``m.frm``, ``m.channel``...), in order."""
        return _messages(self._db, sql, args)

    def select(self, sql: str, args: tuple) -> list[tuple]:
        """Rows of a query on the messages table's columns (``ord``, ``id``, ``frm``...): no record is read."""
        return self._db.execute(sql, args).fetchall()

    def at(self, ords: list[int]) -> list[dict]:
        """The messages at these positions (ascending), in order."""
        out: list[dict] = []
        for i in range(0, len(ords), 500):
            chunk = ords[i:i + 500]
            out += _messages(self._db, f"m.ord IN ({','.join('?' * len(chunk))})", chunk)
        return out

    # The questions ops.py asks while checking a write, answered by the indexes instead of a full scan.
    def has_id(self, mid: str) -> bool:
        row = self._db.execute("SELECT ord FROM events WHERE id=?", (mid,)).fetchone()
        return row is not None and row[0] is not None

    def uses_work(self, wid: str) -> bool:
        return self._db.execute("SELECT 1 FROM messages WHERE work=? LIMIT 1", (wid,)).fetchone() is not None

    def with_key(self, key: str) -> list[dict]:
        """Messages whose id or idempotency key is ``key`` (a superset of what a replay check keeps)."""
        return self.where("m.ord IN (SELECT ord FROM events WHERE id=?) OR m.ikey=?", (key, key))


class Table(Mapping):
    """A table of the state read as a mapping: one row by key, or all of them (then kept)."""

    _sql_one = _sql_all = _sql_count = ""

    def __init__(self, db: sqlite3.Connection, *args: str):
        self._db, self._args = db, args
        self._one: dict = {}
        self._all: dict | None = None

    def __getitem__(self, key):
        if self._all is not None:
            return self._all[key]
        if key not in self._one:
            row = self._db.execute(self._sql_one, (*self._args, key)).fetchone()
            if row is None:
                raise KeyError(key)
            self._one[key] = marshal.loads(row[0])
        return self._one[key]

    def _load_all(self) -> dict:
        if self._all is None:
            self._all = {k: marshal.loads(d) for k, d in self._db.execute(self._sql_all, self._args)}
        return self._all

    def __iter__(self):
        return iter(self._load_all())

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        return self._db.execute(self._sql_count, self._args).fetchone()[0]

    def __contains__(self, key) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def values(self) -> ValuesView[dict]:
        return self._load_all().values()

    def items(self) -> ItemsView[str, dict]:
        return self._load_all().items()

    def keys(self) -> KeysView[str]:
        return self._load_all().keys()


class Sessions(Table):
    _sql_one = "SELECT data FROM sessions WHERE sid=?"
    _sql_all = "SELECT sid, data FROM sessions ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM sessions"

    def by_peer(self, peer_id: str) -> dict | None:
        """The first session (in fold order) of this peer id: ``queries.find_session`` without a full scan."""
        if self._all is not None:
            return next((s for s in self._all.values() if s["peer_id"] == peer_id), None)
        row = self._db.execute("SELECT sid FROM sessions WHERE peer=? ORDER BY seq LIMIT 1", (peer_id,)).fetchone()
        return None if row is None else self[row[0]]


class Boxes(Table):
    _sql_one = "SELECT data FROM boxes WHERE kind=? AND key=?"
    _sql_all = "SELECT key, data FROM boxes WHERE kind=? ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM boxes WHERE kind=?"


class WorkUnits(Table):
    _sql_one = "SELECT data FROM work WHERE wid=?"
    _sql_all = "SELECT wid, data FROM work ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM work"

    def preload(self, wids) -> None:
        """Read these work units now, in one query per 500, for the lookups that follow."""
        if self._all is not None:
            return
        todo = sorted(w for w in wids if w not in self._one)
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            for wid, data in self._db.execute(
                    f"SELECT wid, data FROM work WHERE wid IN ({','.join('?' * len(chunk))})", chunk):
                self._one[wid] = marshal.loads(data)

    def by_opener(self, opener_id: str) -> list[dict]:
        return [marshal.loads(r[0]) for r in self._db.execute(
            "SELECT data FROM work WHERE opener=? ORDER BY seq", (opener_id,))]

    def open_units(self) -> list[dict]:
        """The units not in a terminal state, in state order (column ``open``, no other unit unmarshalled)."""
        if self._all is not None:
            return [w for w in self._all.values() if w["state"] not in model.TERMINAL_STATES]
        return [marshal.loads(r[0]) for r in self._db.execute("SELECT data FROM work WHERE open=1 ORDER BY seq")]

    def open_units_holding(self, text: str) -> list[dict]:
        """``open_units`` whose saved row holds ``text`` somewhere (a cheap pre-filter: the caller checks
        the unit itself; e.g. ``awaiting_approval``, so the inbox reads only gated units)."""
        if self._all is not None:
            return self.open_units()
        return [marshal.loads(r[0]) for r in self._db.execute(
            "SELECT data FROM work WHERE open=1 AND instr(data, ?) > 0 ORDER BY seq", (text.encode(),))]
