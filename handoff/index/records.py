"""The parse cache's rows: a file's bytes to its record (``encode``), and the record back (``record_of``).

A row is keyed by (path, git blob id) and holds the marshalled record and, for an event, its ordering
key (``okey``): what a full fold needs to order the events without loading them.
"""
from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterable, Iterator

from handoff.core import reducer
from handoff.index.db import py_path, sql_path


def _sha1(data: bytes):  # (-> hashlib._Hash)
    import hashlib  # (only when files are hashed: kept off the warm read path)
    return hashlib.sha1(data)


def blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints), computed without git."""
    return _sha1(b"blob %d\0" % len(data) + data).hexdigest()


def record_of(path: str, problem: str | None, ppath: str | None, rec: bytes | None) -> dict:
    if problem:
        return {"path": path, "error": {"reason_code": "malformed", "message": problem}}
    assert rec is not None  # (a row without a problem always holds its record)
    record = marshal.loads(rec)
    return record if ppath == path else redecode(path, record)


def redecode(path: str, record: dict) -> dict:
    """The same bytes seen under another path: only the path checks can differ."""
    if "event" not in record:
        return dict(record, path=path)
    from handoff.core.model import EventError, check_name
    try:
        check_name(path, record["event"])
    except EventError as exc:
        return {"path": path, "error": {"reason_code": exc.reason_code, "message": exc.message}}
    return {"path": path, "event": record["event"]}


def parsed_at(db: sqlite3.Connection, paths: Iterable[str], columns: str, where: str = "1") -> Iterator[tuple]:
    """Parse-cache rows (``columns``, path first) of these paths, 500 paths a query."""
    keys = list(dict.fromkeys(sql_path(p) for p in paths))
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for row in db.execute(f"SELECT path, {columns} FROM p.parsed WHERE {where} AND path IN "
                              f"({','.join('?' * len(chunk))})", chunk):
            yield (py_path(row[0]),) + row[1:]


def lookup(db: sqlite3.Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    """(path, blob) -> marshalled record, for the pairs the parse cache holds."""
    want = set(pairs)
    return {(p, b): r for p, b, r in parsed_at(db, (p for p, _b in pairs), "blob, rec") if (p, b) in want}


def records_of(db: sqlite3.Connection, pairs: list[tuple[str, str]], fresh: dict[str, dict]) -> list[dict]:
    known = lookup(db, [(p, b) for p, b in pairs if b not in fresh])
    out = []
    for path, b in pairs:
        if b in fresh:
            rec = fresh[b]
            out.append(rec if rec["path"] == path else redecode(path, rec))
        elif (path, b) in known:
            out.append(record_of(path, None, path, known[path, b]))
    return out


def encode(rel: str, data: bytes) -> tuple[bytes, bytes | None]:
    """What the parse cache keeps of one file: the marshalled record and its ordering key."""
    rec = reducer.decode(rel, data)
    return marshal.dumps(rec), okey(rec)


def okey(rec: dict) -> bytes | None:
    """The little a full fold needs to order an event without loading it: (id, hlc, after, opens a session).

    None for a record that is not an event (its diagnostic is read from the record itself).
    """
    ev = rec.get("event")
    if ev is None:
        return None
    return marshal.dumps((ev["id"], ev["hlc"], tuple(ev.get("after") or ()), ev["kind"] == "session-open"))


def parse_items(items: list[tuple[str, bytes]]) -> list[tuple[str, str, bytes]]:
    """(path, blob, marshalled record) for in-memory (path, bytes) pairs."""
    return [(rel, blob_id(data), marshal.dumps(reducer.decode(rel, data))) for rel, data in items]


def store_parsed(db: sqlite3.Connection, parsed: list[tuple]) -> None:
    """Keep (path, blob, marshalled record[, ordering key]) in the parse cache (the key is made if absent).

    Rows are keyed by (path, blob): the path is part of what a record says (its name is checked against
    its content), and new files' paths sort after the old ones, so new rows land at the end of the
    index instead of on a random page each (which made syncing the cache cost more than parsing).
    """
    db.executemany("INSERT INTO p.parsed VALUES (?, ?, ?, ?) ON CONFLICT(path, blob) DO UPDATE SET "
                   "rec=excluded.rec, okey=excluded.okey",
                   [(sql_path(x[0]), x[1], x[2], x[3] if len(x) > 3 else okey(marshal.loads(x[2]))) for x in parsed])
