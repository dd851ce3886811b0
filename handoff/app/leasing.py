"""Leases and deadlines (AGH): ``claim``, ``heartbeat``, ``release`` and ``sweep`` as plain calls.

Each returns the JSON-ready dict ``handoff claim|heartbeat|release|sweep -o json`` prints.
"""
from __future__ import annotations

from handoff.app import sessions
from handoff.app.meta import write_meta
from handoff.app.workspace import Workspace
from handoff.core import deadlines, leases, session_ops, work_ops
from handoff.store import clock
from handoff.views import payloads as views

LEASE_KINDS = ("claim", "heartbeat", "release")


def lease(ws: Workspace, kind: str, ident: str, session: str | None, duration: str | None = None,
          given_id: str | None = None, *, commit: bool | None = None) -> dict:
    """Write one ``claim``, ``heartbeat`` or ``release`` event on a work unit; the unit's lease after it."""
    if kind not in LEASE_KINDS:
        raise ValueError(f"not a lease verb: {kind!r}")
    lease_ms = leases.parse_lease(duration) if kind != "release" else None
    now = clock.now_ms()

    def build(state):
        s = sessions.resolve(ws, state, session, write=True)
        w = work_ops.find_work(state, ident)
        return [leases.draft(state, s, w, kind, now_ms=now, lease_ms=lease_ms, given_id=given_id)]

    result = ws.write(build, commit=commit)
    state = ws.state()
    w = state["work"][result.events[0]["work_id"]]
    return {"work_id": w["work_id"], "lease": leases.view(state, w, clock.now_ms()),
            "event": result.events[0], **write_meta(result)}


class _Nothing(Exception):
    pass


def sweep(ws: Workspace, session: str | None, *, dry_run: bool = False, given_id: str | None = None,
          commit: bool | None = None) -> dict:
    """Turn passed deadlines into outcomes (``trace failed``, reason expired) for the overdue work
    ``session`` takes part in; ``dry_run`` lists them and writes nothing."""
    now = clock.now_ms()
    if dry_run:
        state = ws.state()
        s = session_ops.session_for(state, session, write=False)
        rows = [views.work_payload(w, now, history=False) for w in deadlines.overdue_work(state, now, s["peer_id"])]
        return {"dry_run": True, "swept": rows}
    swept: list[str] = []

    def build(state):
        s = sessions.resolve(ws, state, session, write=True)
        drafts = deadlines.sweep(state, s, now, given_id)
        if not drafts:
            raise _Nothing()
        swept[:] = [d.get("work_id") or d["_replay"]["work_id"] for d in drafts]
        return drafts

    try:
        result = ws.write(build, commit=commit)
    except _Nothing:
        return {"dry_run": False, "swept": []}
    state = ws.state()
    rows = [views.work_payload(state["work"][wid], now, history=False) for wid in swept]
    return {"dry_run": False, "swept": rows, **write_meta(result)}
