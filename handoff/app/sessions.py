"""Sessions: open and close them, and what one session sees (inbox, brief, status, history, events).

The Python API's ``Handoff``/``Session`` methods and the ``session ...``, ``inbox`` and ``brief``
commands call these; each returns the dict the command prints with ``-o json``.
"""
from __future__ import annotations

from handoff.app.meta import event_meta, write_meta
from handoff.app.workspace import Workspace
from handoff.core import queries, session_ops, work_ops
from handoff.errors import HandoffError
from handoff.store import clock, local
from handoff.views import payloads as views


def resolve(ws: Workspace, state: dict, ident: str | None, *, write: bool = False) -> dict:
    """The session ``ident`` names in ``state``, as this clone opened it (``session_ops.session_for``)."""
    return session_ops.session_for(state, ident, write=write, own=local.own_sessions(ws, ident))


def open_session(ws: Workspace, agent: str, channels: list[str], *, name: str | None = None,
                 session_id: str | None = None, workspace: str | None = None,
                 commit: bool | None = None, reopen: bool = False) -> dict:
    """``handoff session new``: the new session's view and its write (``reopen``: a closed one of this id)."""
    sid = session_id if session_id is not None else f"sess_{clock.new_ulid()[-12:]}"  # --id "" is refused
    result = ws.write(lambda st: session_ops.session_open(st, agent=agent, channels=channels, name=name,
                                                  session_id=sid, workspace=workspace, reopen=reopen), commit=commit)
    if not result.replayed and not result.events[0]["body"].get("reopens"):
        ev = result.events[0]
        local.remember_session(ws, {"session_id": sid, "peer_id": ev["from"], "agent": ev["body"]["agent"],
                                    "name": ev["body"].get("name"), "open_event_id": ev["id"]})
    opened = queries.find_session(ws.state(), sid)
    assert opened is not None  # (just written, or written before: a replay)
    reopened = {"reopened_at": opened["reopened_at"]} if opened.get("reopened_at") else {}
    return {**views.session_view(opened), **reopened, **event_meta(result)}


def close(ws: Workspace, ident: str | None, *, by: str | None = None, given_id: str | None = None,
          commit: bool | None = None) -> dict:
    """``handoff session close``: written by the session itself, or by ``by`` (same agent, or an admin)."""
    from handoff.core.checks import admins_of
    own = local.own_sessions(ws, ident, by)
    admins = admins_of(ws.config)

    def build(st):
        target = session_ops.session_for(st, ident, write=False, own=own)
        actor = session_ops.session_for(st, by, own=own) if by else None
        if actor is not None and actor["session_id"] == target["session_id"]:
            actor = None
        return session_ops.session_close(st, target, given_id, by=actor, admins=admins)

    result = ws.write(build, commit=commit)
    return {"session_id": result.events[0]["session_id"], "state": "closed", **event_meta(result)}


def inbox(ws: Workspace, state: dict, s: dict, *, all: bool = False, ack: list[str] | None = None) -> dict:
    """``handoff inbox``: what waits for session ``s``.  Reading never changes it; ``ack`` records local acks."""
    from handoff.index import for_inbox, for_inbox_unacked
    now = clock.now_ms()
    if not (all or ack):  # what waits, only: acknowledged messages are never read (nor, mostly, their acks)
        narrowed, acked = for_inbox_unacked(state, s, ws)
        entries = queries.inbox(narrowed, s, acked, now)
        return {"session_id": s["session_id"], "peer_id": s["peer_id"], "count": len(entries),
                **queries.inbox_counts(entries), "entries": entries, "awaiting_approval": _gated(state, s)}
    acked = local.read_acks(ws, s["session_id"])
    st = for_inbox(state, s)  # only the messages the inbox looks at, straight from the index
    entries = queries.inbox(st, s, acked, now, include_all=True)
    if ack:
        known = {e["id"] for e in entries}
        wanted = sorted(known) if list(ack) == ["all"] else list(ack)
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise HandoffError("not_found", f"not in this session's inbox: {', '.join(unknown)}",
                               hint="see the ids with `handoff inbox --all`")
        local.add_acks(ws, s["session_id"], wanted)
        acked |= set(wanted)
        entries = queries.inbox(st, s, acked, now, include_all=True)
    if not all:
        entries = [e for e in entries if not (e["answered"] or e["acked"] or e["expired"])]
    return {"session_id": s["session_id"], "peer_id": s["peer_id"], "count": len(entries),
            **queries.inbox_counts(entries), "entries": entries, "awaiting_approval": _gated(state, s)}


def _gated(state: dict, s: dict) -> list[dict]:
    """Its work that waits for a person's approval (core/approvals.py): nothing to answer, only to know."""
    from handoff.app.approvals import for_session
    return for_session(state, s)


def brief(ws: Workspace, state: dict, s: dict, *, limit: int = 8) -> dict:
    """``handoff brief``: what a fresh agent session needs first."""
    from handoff.index import for_inbox
    from handoff.views import brief as brief_view
    acked = local.read_acks(ws, s["session_id"])
    # (its inbox part reads only this session's messages from the index, as `handoff inbox` does)
    built = brief_view.build(for_inbox(state, s, skip=acked), s, acked, clock.now_ms(), limit=limit)
    return session_ops.closed_brief(built, s) if s["state"] == "closed" else built


def status(ws: Workspace, state: dict, s: dict) -> dict:
    """``handoff session status``: identity, channels, inbox depth, open work."""
    now = clock.now_ms()
    waiting = queries.inbox(state, s, local.read_acks(ws, s["session_id"]), now)
    work = [w for w in state["work"].values() if s["peer_id"] in (w["opened_by_peer_id"], w["target_peer_id"])]
    return {**views.session_view(s),
            "inbox_count": len(waiting),
            "open_work": [queries.work_brief(w, now) for w in work if not work_ops.is_terminal(w)],
            "sent": sum(1 for m in state["messages"] if m["from"] == s["peer_id"])}


def history(state: dict, s: dict) -> dict:
    """``handoff session history``: what the session sent and received."""
    peer = s["peer_id"]
    items = []
    for m in state["messages"]:
        if m["from"] == peer:
            items.append({**queries.message(m), "direction": "sent"})
        elif queries.addressed_to(m, s):
            items.append({**queries.message(m), "direction": "received"})
    return {"session_id": s["session_id"], "messages": items}


def events(ws: Workspace, s: dict, last: int | None = None) -> dict:
    """``handoff session events``: every event the session wrote, in event order."""
    recs = [r["event"] for r in ws.records() if "event" in r]
    mine = sorted((e for e in recs if e.get("session_id") == s["session_id"] or e["from"] == s["peer_id"]),
                  key=lambda e: (e["hlc"], e["id"]))
    if last is not None:
        mine = mine[-last:] if last > 0 else []
    return {"session_id": s["session_id"], "events": mine}


__all__ = ["brief", "close", "events", "history", "inbox", "open_session", "resolve", "status", "write_meta"]
