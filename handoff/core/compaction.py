"""Which event files a compaction may seal into the archive (pure).

Sealed files stay events: the index, ``verify`` and every view read them from their segment
(``core/archive.py``) exactly as they read the work tree, so the state does not change.  What the rule
decides is which history is old and finished enough to leave the work tree:

* every event of a work unit in a terminal state whose last event is before the cut (its messages,
  traces, receipts and leases, whoever sent them);
* the session-open and session-close events of a session closed before the cut;
* other messages before the cut that belong to no open work unit (work units the state does not know
  count as closed: nothing can move them on).

Never sealed: anything of an open work unit (a lease of open work included), an open session's events,
an event at or after the cut, a file that is not a readable event (its diagnostic must stay visible
where it is), a file read from another branch.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from handoff.core.model import SESSION_KINDS, TERMINAL_STATES, parse_ts


def sealable(records: Iterable[Mapping[str, Any]], state: Mapping[str, Any], cut_ms: int) -> list[str]:
    """The paths (as the records name them) of the events that may be sealed, sorted."""
    recs = [r for r in records if "event" in r and "ref" not in r]
    work = state.get("work") or {}
    sessions = state.get("sessions") or {}
    last_of: dict[str, int] = {}
    for r in recs:
        wid = r["event"].get("work_id")
        if isinstance(wid, str):
            last_of[wid] = max(last_of.get(wid, 0), _ms(r["event"]))
    closed_work = {wid for wid, last in last_of.items()
                   if last < cut_ms and (wid not in work or work[wid].get("state") in TERMINAL_STATES)}
    out = []
    for r in recs:
        ev = r["event"]
        wid = ev.get("work_id")
        if isinstance(wid, str):
            ok = wid in closed_work
        elif ev.get("kind") in SESSION_KINDS:
            s = sessions.get(ev.get("session_id"))
            closed_ms = parse_ts(s.get("closed_at")) if s is not None and s.get("state") == "closed" else None
            ok = _ms(ev) < cut_ms and (s is None or (closed_ms is not None and closed_ms < cut_ms))
        else:
            ok = _ms(ev) < cut_ms
        if ok:
            out.append(r["path"])
    return sorted(set(out))


def _ms(ev: Mapping[str, Any]) -> int:
    """An event's time (its ``ts``); an unreadable one counts as now-or-later, so it is kept."""
    ms = parse_ts(ev.get("ts"))
    return ms if ms is not None else 1 << 62

