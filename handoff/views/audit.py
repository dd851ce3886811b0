"""The audit timeline behind ``handoff log`` (pure: records + state -> entries).

Every event file becomes one entry, in event order (the reducer's order:
causal links, then the hybrid logical clock, then the id), named for export:

- a message that opens a work unit: ``agent.handoff.requested``; the receipt
  that answers it: ``agent.handoff.accepted`` / ``agent.handoff.rejected``
  (Hivemind's event names; only for the applied, first answer);
- other receipts and traces: ``work.receipt.<status>``, ``work.trace.<state>``;
- other envelopes: ``network.<kind>``; sessions: ``session.opened`` /
  ``session.closed``; leases: ``work.claim``, ``work.heartbeat``, ``work.release``; a person's
  decision on a gate: ``work.approval.approved`` / ``work.approval.denied``.

A message the lifecycle refused keeps its name and carries ``refused`` (the
reason code): the audit shows what was written, and what it did.
"""
from __future__ import annotations

import json

from handoff.core import queries, reducer
from handoff.errors import HandoffError

ENTRY_FIELDS = ("seq", "event", "id", "kind", "ts", "hlc", "from", "agent", "session_id", "to", "channel", "surface",
                "thread_id", "direct_id", "work_id", "trace_id", "reply_to", "causation_id", "status", "work_state",
                "refused", "summary", "path")

_SESSION_NAMES = {"session-open": "session.opened", "session-close": "session.closed"}
_LEASE_NAMES = {"claim": "work.claim", "heartbeat": "work.heartbeat", "release": "work.release"}


def ordered_events(records: list[dict]) -> list[tuple[dict, str]]:
    """(event, path) for every decodable file, one per id, in event order."""
    by_id: dict[str, list[dict]] = {}
    for rec in records:
        if "event" in rec:
            by_id.setdefault(rec["event"]["id"], []).append(rec)
    paths, events = {}, []
    for eid, recs in by_id.items():
        keep = recs[0] if len(recs) == 1 else min(
            recs, key=lambda r: (json.dumps(r["event"], sort_keys=True, ensure_ascii=False), r["path"]))
        paths[eid] = keep["path"]
        events.append(keep["event"])
    ordered, _cyclic = reducer.order_events(events)
    return [(ev, paths[ev["id"]]) for ev in ordered]


def event_name(ev: dict, applied: dict | None, work: dict | None) -> str:
    """The export name of one event; ``applied`` is its work-history entry when the lifecycle applied it."""
    kind = ev["kind"]
    if kind in _SESSION_NAMES:
        return _SESSION_NAMES[kind]
    if kind in _LEASE_NAMES:
        return _LEASE_NAMES[kind]
    body = ev.get("body") or {}
    if kind in ("say", "capability"):
        if applied is not None and applied["state_before"] is None:
            return "agent.handoff.requested"
        return f"network.{kind}"
    if kind == "receipt":
        status = body.get("status")
        if applied is not None and work is not None:
            if status == "accepted":
                return "agent.handoff.accepted"
            if status == "rejected" and work.get("response") == "rejected":
                return "agent.handoff.rejected"
        return f"work.receipt.{status}"
    if kind == "trace":
        return f"work.trace.{body.get('state')}"
    if kind == "approval":  # a person's decision on a gate (core/approvals.py)
        return f"work.approval.{body.get('decision')}"
    return f"network.{kind}"


def _summary(ev: dict) -> str | None:
    body = ev.get("body") or {}
    for key in ("text", "message", "detail", "description"):
        if isinstance(body.get(key), str) and body[key].strip():
            return " ".join(body[key].split())[:200]
    if ev["kind"] == "session-open":
        return f"agent {body.get('agent')} joined {', '.join(body.get('channels') or [])}"
    if isinstance((body.get("capability") or {}).get("summary"), str):
        return body["capability"]["summary"][:200]
    return None


def timeline(records: list[dict], state: dict, *, work: str | None = None, thread: str | None = None,
             trace: str | None = None, session: str | None = None, channel: str | None = None) -> list[dict]:
    """The entries matching every filter given (none: the whole history), in event order."""
    peer = None
    if session is not None:
        found = state["sessions"].get(session) or next(
            (s for s in state["sessions"].values() if s["peer_id"] == session), None)
        if found is None:
            raise HandoffError("session_not_found", f"session {session!r} not found",
                               hint="list sessions with `handoff session list`")
        session, peer = found["session_id"], found["peer_id"]
    if work is not None and work not in state["work"] and not any(m.get("work_id") == work for m in state["messages"]):
        raise HandoffError("work_not_found", f"work {work!r} not found", hint="list work with `handoff work list`")
    if thread is not None and not any(b["thread_id"] == thread and channel in (None, b["channel"])
                                      for b in state["threads"].values()):
        raise HandoffError("conversation_not_found", f"thread {thread!r} not found",
                           hint="list threads with `handoff threads list --channel C`")
    traced_work = {w["work_id"] for w in state["work"].values() if trace is not None and w.get("trace_id") == trace}

    refused = {m["id"]: m.get("refused") for m in state["messages"]}
    for d in state["diagnostics"]:
        if d.get("id") and d["id"] not in refused:
            refused[d["id"]] = d["reason_code"]  # dropped before reaching the lifecycle
    history = {h["message_id"]: h for w in state["work"].values() for h in w["history"]}
    agent_of = queries.agent_by_peer(state)

    out = []
    for seq, (ev, path) in enumerate(ordered_events(records), 1):
        if work is not None and ev.get("work_id") != work:
            continue
        if thread is not None and ev.get("thread_id") != thread:
            continue
        if channel is not None and ev.get("channel") != channel:
            continue
        if trace is not None and ev.get("trace_id") != trace and ev.get("work_id") not in traced_work:
            continue
        if session is not None and ev.get("session_id") != session and ev["from"] != peer:
            continue
        h = history.get(ev["id"])
        applied = h if h is not None and not h["refused"] else None
        w = state["work"].get(ev.get("work_id")) if ev.get("work_id") else None
        body = ev.get("body") or {}
        entry = {
            "seq": seq,
            "event": event_name(ev, applied, w),
            "id": ev["id"], "kind": ev["kind"], "ts": ev["ts"], "hlc": ev["hlc"], "from": ev["from"],
            "agent": agent_of.get(ev["from"]),
            "session_id": ev.get("session_id"), "to": ev.get("to"), "channel": ev.get("channel"),
            "surface": ev.get("surface"), "thread_id": ev.get("thread_id"), "direct_id": ev.get("direct_id"),
            "work_id": ev.get("work_id"), "trace_id": ev.get("trace_id"), "reply_to": ev.get("reply_to"),
            "causation_id": ev.get("causation_id"),
            "status": body.get("status") if ev["kind"] == "receipt" else body.get("state") if ev["kind"] == "trace"
            else None,
            "work_state": h["state_after"] if h is not None else None,
            "refused": refused.get(ev["id"]),
            "summary": _summary(ev),
            "path": path,
        }
        out.append({k: entry[k] for k in ENTRY_FIELDS})
    return out
