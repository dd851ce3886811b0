"""Saving a fold: new rows, touched rows, and the small accumulator (counters, diagnostics, frontier).

An extension writes only what its events touched; a full fold (``refold``) writes everything into
fresh tables.
"""
from __future__ import annotations

import marshal
import sqlite3
import time
from typing import Any

from handoff.core import model, reducer
from handoff.index.db import get_meta

FUTURE_SLACK_MS = 30 * 86_400_000


class MessageSink:
    """Where the fold appends messages: each becomes its table row at once (the message dict, a copy of
    its event, is not kept: at 100,000 events that is ~100 MB less)."""

    def __init__(self, first_ord: int, blobs: dict[str, str]):
        self.first_ord = first_ord
        self.blobs = blobs
        self.rows: list[tuple] = []
        self.answers: list[tuple[str, int]] = []  # (id answered, ordinal of the answer): table ``answers``
        self.ords: dict[str, int] = {}

    def append(self, m: dict) -> None:
        ext = m.get("ext")
        ikey = ext.get("idempotency_key") if isinstance(ext, dict) else None
        ordinal = self.first_ord + len(self.rows)
        self.ords[m["id"]] = ordinal
        blob = self.blobs.get(m["path"])  # messages point at the parse cache rather than copying the event
        self.rows.append((ordinal, m["id"], blob or None, m["path"], m["refused"], m["from"], m.get("to"),
                          m.get("channel"), m.get("surface"), m.get("thread_id"), m.get("direct_id"),
                          m.get("work_id"), ikey if isinstance(ikey, str) else None, m["hlc"],
                          None if blob else marshal.dumps(m)))
        body = m.get("body")
        for mid in (m.get("reply_to"), m.get("causation_id"), body.get("for_id") if isinstance(body, dict) else None):
            if isinstance(mid, str) and mid:
                self.answers.append((mid, ordinal))

    def insert(self, db: sqlite3.Connection) -> None:
        """Write the rows gathered so far (messages and what they answer)."""
        db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.rows)
        db.executemany("INSERT INTO answers VALUES (?,?)", self.answers)

    def __len__(self) -> int:
        return len(self.rows)


def _open_counts(db: sqlite3.Connection, boxes: list[str]) -> dict[str, int]:
    """Open work units per box (``"thread:<channel>/<thread>"`` / ``"direct:<id>"``), in one query per 500."""
    out: dict[str, int] = {}
    for i in range(0, len(boxes), 500):
        chunk = boxes[i:i + 500]
        out.update(db.execute(f"SELECT box, COUNT(*) FROM work WHERE open=1 AND box IN ({','.join('?' * len(chunk))}) "
                              f"GROUP BY box", chunk))
    return out


def _save_sessions(db: sqlite3.Connection, acc: dict, saved: dict[str, bytes] | None) -> None:
    """Sessions and the agent of each peer, kept out of the small accumulator: a command reads the one
    session it acts for, not all of them.  After a full fold (``saved`` None) every row is written;
    after an extension only new sessions and those whose row changed."""
    dumps = marshal.dumps
    sessions = acc["sessions"]
    if saved is None:
        db.executemany("INSERT INTO sessions VALUES (?,?,?,?)",
                       [(i, sid, sess["peer_id"], dumps(sess)) for i, (sid, sess) in enumerate(sessions.items())])
        db.execute("INSERT OR REPLACE INTO main.meta VALUES ('agents', ?)", (dumps(acc["agent_by_peer"]),))
        return
    inserts, updates = [], []
    next_seq = None
    for sid, sess in sessions.items():
        data = dumps(sess)
        old = saved.get(sid)
        if old is None:
            if next_seq is None:
                next_seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM sessions").fetchone()[0]
            inserts.append((next_seq, sid, sess["peer_id"], data))
            next_seq += 1
        elif old != data:
            updates.append((data, sid))
    db.executemany("UPDATE sessions SET data=? WHERE sid=?", updates)
    db.executemany("INSERT INTO sessions VALUES (?,?,?,?)", inserts)
    if inserts:  # (a peer's agent is only ever added, by a session opening)
        db.execute("INSERT OR REPLACE INTO main.meta VALUES ('agents', ?)", (dumps(acc["agent_by_peer"]),))


def ulid_prefix(ms: int) -> str:
    from handoff.core.ids import encode_base32
    return encode_base32(ms, 10)


def latest_ms(ev: dict) -> int:
    """What clock_diagnostics compares with now: the latest of the event's clock, ts and id time."""
    from handoff.core.model import parse_hlc, parse_ts
    hlc = parse_hlc(ev.get("hlc"))
    try:
        from handoff.core.ids import ulid_ms
        id_ms = ulid_ms(ev["id"].split("_", 1)[1])
    except (ValueError, IndexError, KeyError):
        id_ms = 0
    return max(hlc[0] if hlc else 0, parse_ts(ev.get("ts")) or 0, id_ms)


def future_horizon() -> tuple[int, str, str, str]:
    """(ms, ts, hlc prefix, id prefix) of the moment after which an event may be dated ahead of a reader's
    clock (``reducer.clock_diagnostics``, applied at read time): events kept when within a month of being
    "future" now, so a clock a little behind still sees them.  The three strings let most events be
    passed over without parsing their times."""
    horizon = int(time.time() * 1000) + reducer.FUTURE_TOLERANCE_MS - FUTURE_SLACK_MS
    from handoff.core.model import format_ts
    return horizon, format_ts(horizon), f"{horizon:016d}", ulid_prefix(horizon)


def save_fold(db: sqlite3.Connection, acc0: dict, acc: dict, events: list[dict], stamps: dict, *,
              blobs: dict[str, str], cyclic: bool = False, full: bool = False, paths_of: dict[str, str] | None = None,
              saved_sessions: dict[str, bytes] | None = None, saved_work: dict[str, tuple] | None = None) -> None:
    """Write what a fold produced: new rows, touched rows, and the small accumulator."""
    first_ord = acc0.get("messages", 0)
    first_lease = acc0.get("leases", 0)
    _save_event_rows(db, acc, events, first_lease)
    work = acc["work"]
    boxes_touched = _save_work(db, work, saved_work, full)
    _save_timers(db, work, full)
    _save_boxes(db, acc, boxes_touched, full)
    frontier = acc0.get("frontier")
    if events:
        top = max((ev["hlc"], ev["id"]) for ev in events)
        if frontier is None or top > tuple(frontier):
            frontier = top
    max_hlc = max([h for h in [acc0.get("max_hlc")] + [ev["hlc"] for ev in events] if h], default=None)
    diagnostics = list(acc0.get("diagnostics", [])) + acc["diagnostics"]
    diagnostics.sort(key=reducer.diagnostic_key)
    _save_future(db, acc0, events, paths_of, full)
    _save_sessions(db, acc, saved_sessions)
    small = {"counters": acc["counters"],
             "diagnostics": diagnostics, "max_hlc": max_hlc, "event_count": acc0.get("event_count", 0) + len(events),
             "messages": first_ord + len(acc["messages"]), "leases": first_lease + len(acc["leases"]),
             "frontier": list(frontier) if frontier else None, "cyclic": cyclic or acc0.get("cyclic", False),
             "stamps": stamps}
    db.executemany("INSERT OR REPLACE INTO main.meta VALUES (?, ?)",
                   [("acc", marshal.dumps(small)), ("stamps", marshal.dumps(stamps)),
                    ("gen", (get_meta(db, "gen") or 0) + 1)])


def _save_event_rows(db: sqlite3.Connection, acc: dict, events: list[dict], first_lease: int) -> None:
    """The fold's message and lease rows, and per event: its id, the names it mentions, parents not seen."""
    sink = acc["messages"]
    ords = sink.ords
    sink.insert(db)
    db.executemany("INSERT INTO leases VALUES (?,?)",
                   [(first_lease + i, marshal.dumps(ev)) for i, ev in enumerate(acc["leases"])])
    db.executemany("INSERT OR IGNORE INTO events VALUES (?,?)", [(ev["id"], ords.get(ev["id"])) for ev in events])
    known = {ev["id"] for ev in events}
    names = set()
    parents = set()
    for ev in events:
        names.add(ev["from"])
        for key in ("to", "session_id"):
            if isinstance(ev.get(key), str):
                names.add(ev[key])
        for p in ev.get("after") or ():
            if p not in known:
                parents.add(p)
    db.executemany("INSERT OR IGNORE INTO peers VALUES (?)", [(n,) for n in names])
    if parents:
        plist = sorted(parents)
        present: set[str] = set()
        for i in range(0, len(plist), 500):
            chunk = plist[i:i + 500]
            present.update(r[0] for r in db.execute(
                f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        db.executemany("INSERT OR IGNORE INTO dangling VALUES (?)", [(p,) for p in plist if p not in present])


def _save_work(db: sqlite3.Connection, work: Any, saved_work: dict[str, tuple] | None,
               full: bool) -> set[tuple[str, str]]:
    """Work units: new ones get the next sequence numbers, in the order the fold created them; touched ones
    are updated.  Returns the boxes (kind, key) of every unit written."""
    next_seq = 0 if full else db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM work").fetchone()[0]
    boxes_touched: set[tuple[str, str]] = set()
    inserts, updates, data_updates = [], [], []
    for wid, w in work.items():
        kind, key = reducer.work_box(w)
        boxes_touched.add((kind, key))
        open_ = int(w["state"] not in model.TERMINAL_STATES)
        if wid in work.loaded:
            data = marshal.dumps(w)
            old = saved_work.get(wid) if saved_work else None
            if old is None or tuple(old[:3]) != (f"{kind}:{key}", open_, w.get("opener_id")):
                updates.append((f"{kind}:{key}", open_, w.get("opener_id"), data, wid))
            elif old[3] != data:  # (the indexed columns are unchanged: leave their indexes alone)
                data_updates.append((data, wid))
        else:
            inserts.append((wid, next_seq, f"{kind}:{key}", open_, w.get("opener_id"), marshal.dumps(w)))
            next_seq += 1
    db.executemany("UPDATE work SET box=?, open=?, opener=?, data=? WHERE wid=?", updates)
    db.executemany("UPDATE work SET data=? WHERE wid=?", data_updates)
    db.executemany("INSERT INTO work VALUES (?,?,?,?,?,?)", inserts)
    return boxes_touched


def _save_boxes(db: sqlite3.Connection, acc: dict, boxes_touched: set[tuple[str, str]], full: bool) -> None:
    """Threads and direct rooms the fold touched, and those whose open-work count may have changed."""
    counts: dict[str, int] = {}
    if full:  # every work unit is in memory: count the open ones per box here
        for w in acc["work"].values():
            if w["state"] not in model.TERMINAL_STATES:
                kind, key = reducer.work_box(w)
                k = f"{kind}:{key}"
                counts[k] = counts.get(k, 0) + 1
    next_box = 0 if full else db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM boxes").fetchone()[0]
    brows = []
    for kind, table in (("thread", acc["threads"]), ("direct", acc["directs"])):
        for key, box in table.items():
            brows.append((kind, key, box, key in table.loaded))
    for kind, key in sorted(boxes_touched):
        table = acc["threads"] if kind == "thread" else acc["directs"]
        if key not in table:
            box = table.get(key)  # a box whose open-work count may have changed
            if box is not None:
                brows.append((kind, key, box, True))
    if not full:  # (counted once the box rows are known: one query, not one per box)
        counts = _open_counts(db, sorted({f"{kind}:{key}" for kind, key, _box, _existed in brows}))
    box_inserts, box_updates = [], []
    for kind, key, box, existed in brows:
        box["open_work_count"] = counts.get(f"{kind}:{key}", 0)
        if isinstance(box["participants"], set):
            reducer.finish_box(box)
        if existed:
            box_updates.append((marshal.dumps(box), kind, key))
        else:
            box_inserts.append((kind, key, next_box, marshal.dumps(box)))
            next_box += 1
    db.executemany("UPDATE boxes SET data=? WHERE kind=? AND key=?", box_updates)
    db.executemany("INSERT INTO boxes VALUES (?,?,?,?)", box_inserts)


def _save_future(db: sqlite3.Connection, acc0: dict, events: list[dict], paths_of: dict[str, str] | None,
                 full: bool) -> None:
    """Keep table ``future`` (events that may still be dated ahead of a reader's clock) in step: rows that
    fell behind the horizon go (found by the index on ``latest``), the new events that may be future come
    in; a full fold starts from an empty table with the list its stream gathered (``acc0["future"]``).
    A store written today has every event in the window: kept in a table, an extension and a read cost
    what changed, not every event of the last month."""
    horizon, horizon_ts, horizon_hlc, horizon_id = future_horizon()
    if full:
        rows = [(r["event"]["id"], latest_ms(r["event"]), r["path"], r["event"].get("hlc"), r["event"].get("ts"))
                for r in acc0.get("future", [])]
    else:
        db.execute("DELETE FROM future WHERE latest<=?", (horizon,))
        rows = []
    rows += [(ev["id"], latest, (paths_of or {}).get(ev["id"], ""), ev.get("hlc"), ev.get("ts"))
             for ev in events
             if (str(ev.get("hlc"))[:16] > horizon_hlc or str(ev.get("ts")) > horizon_ts
                 or ev["id"].split("_", 1)[-1][:10] > horizon_id) and (latest := latest_ms(ev)) > horizon]
    db.executemany("INSERT OR REPLACE INTO future VALUES (?,?,?,?,?)", [r for r in rows if r[1] > horizon])


def _save_timers(db: sqlite3.Connection, work: Any, full: bool) -> None:
    """Keep ``timers`` in step with the work units this fold wrote (a full fold starts from an empty table)."""
    from handoff.core import timers
    rows, gone = [], []
    for wid, w in work.items():
        trow = timers.row(w)
        if trow is not None:
            rows.append((wid, *trow))
        elif not full:
            gone.append((wid,))
    db.executemany("DELETE FROM timers WHERE wid=?", gone)
    db.executemany("INSERT OR REPLACE INTO timers VALUES (?,?,?,?)", rows)
