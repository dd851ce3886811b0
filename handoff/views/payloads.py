"""State -> the JSON shapes users and scripts rely on (pure).

Field names follow the seeds: envelopes carry AGH's fields, work units the
``NetworkWorkPayload`` fields, handoffs Hivemind's.  Every list is in event
order or sorted, never in dict/set order, so output is byte-stable.
"""
from __future__ import annotations

from handoff.core.model import TERMINAL_STATES
from handoff.core.queries import handoff_status, message, overdue

WORK_FIELDS = ("work_id", "workspace_id", "channel", "surface", "thread_id", "direct_id", "opened_by_peer_id",
               "opened_session_id", "target_peer_id", "state", "opened_at", "last_activity_at", "terminal_at")


def session_view(s: dict) -> dict:
    keys = ("session_id", "peer_id", "agent", "name", "channels", "workspace", "state", "opened_at", "closed_at",
            "last_activity_at")
    return {k: s.get(k) for k in keys}


def work_payload(w: dict, now_ms: int | None = None, *, history: bool = True) -> dict:
    out = {k: w.get(k) for k in WORK_FIELDS}
    out.update({
        "terminal": w["state"] in TERMINAL_STATES,
        "terminal_reason": w.get("terminal_reason"),
        "intent": w.get("intent"),
        "description": w.get("description"),
        "trace_id": w.get("trace_id"),
        "accepted_at": w.get("accepted_at"),
        "accepted_by": w.get("accepted_by"),
        "deadline_at": w.get("deadline_at"),
        "overdue": overdue(w, now_ms),
        "result": w.get("result"),
        "checkpoint": w.get("checkpoint"),
        "checkpoint_at": w.get("checkpoint_at"),
        "last_message": w.get("last_message"),
        "waiting_on": _waiting_on(w),
        "status": handoff_status(w),
        "gate": w.get("gate"),  # a person's checkpoint (core/approvals.py): its state, name, approver
    })
    if history:
        out["history"] = w["history"]
        out["diagnostics"] = w["diagnostics"]
    return out


def _waiting_on(w: dict) -> str | None:
    if w["state"] in TERMINAL_STATES:
        return None
    if (w.get("gate") or {}).get("state") == "awaiting_approval":
        return "person"  # (a person's approval: see gate.approver)
    return w["opened_by_peer_id"] if w["state"] == "needs_input" else w["target_peer_id"]


HANDOFF_STATUSES = ("pending", "accepted", "rejected", "canceled", "failed")


def handoff_view(w: dict, now_ms: int | None = None) -> dict:
    return {
        "handoff_id": w["work_id"],
        "channel": w["channel"],
        "from": w["opened_by_peer_id"],
        "to": w["target_agent"] or w["target_peer_id"],
        "description": w.get("description"),
        "context": w.get("context"),
        "status": handoff_status(w),
        "requested_at": w["opened_at"],
        "responded_at": w.get("responded_at"),
        "accepted_by": w.get("accepted_by"),
        "reason": w.get("reject_reason"),
        "work_id": w["work_id"],
        "state": w["state"],
        "deadline_at": w.get("deadline_at"),
        "overdue": overdue(w, now_ms),
        "checkpoint": w.get("checkpoint"),
        "result": w.get("result"),
        "gate": w.get("gate"),
    }


THREAD_FIELDS = ("thread_id", "channel", "root_message_id", "title", "opened_by_peer_id", "opened_session_id",
                 "opened_at", "last_activity_at", "message_count", "participant_count", "participants",
                 "open_work_count", "last_message_preview")
DIRECT_FIELDS = ("direct_id", "channel", "peer_a", "peer_b", "opened_at", "last_activity_at", "message_count",
                 "open_work_count", "last_message_preview")


def thread_summary(box: dict) -> dict:
    return {k: box.get(k) for k in THREAD_FIELDS}


def direct_summary(box: dict) -> dict:
    return {k: box.get(k) for k in DIRECT_FIELDS}


def threads_in(state: dict, channel: str) -> list[dict]:
    boxes = [b for b in state["threads"].values() if b["channel"] == channel]
    return [thread_summary(b) for b in sorted(boxes, key=lambda b: (b["last_activity_at"], b["thread_id"]),
                                              reverse=True)]


def container_messages(state: dict, *, channel: str, thread_id: str | None = None,
                       direct_id: str | None = None) -> list[dict]:
    out = []
    for m in state["messages"]:
        if m["channel"] != channel:
            continue
        if thread_id is not None and m.get("thread_id") == thread_id:
            out.append(message(m))
        elif direct_id is not None and m.get("direct_id") == direct_id:
            out.append(message(m))
    return out


def channels(state: dict) -> list[dict]:
    chans: dict[str, dict] = {}

    def get(name: str) -> dict:
        return chans.setdefault(name, {"channel": name, "sessions": [], "peers": set(), "thread_count": 0,
                                       "direct_count": 0, "open_work_count": 0, "message_count": 0,
                                       "last_activity_at": None, "last_message_preview": None})

    for s in state["sessions"].values():
        for c in s["channels"]:
            ch = get(c)
            ch["peers"].add(s["peer_id"])
            if s["state"] == "active":
                ch["sessions"].append(s["session_id"])
    for m in state["messages"]:
        ch = get(m["channel"])
        ch["peers"].add(m["from"])
        ch["message_count"] += 1
        ch["last_activity_at"] = m["ts"]
    for b in state["threads"].values():
        ch = get(b["channel"])
        ch["thread_count"] += 1
        if ch.get("_last") is None or b["last_activity_at"] >= ch["_last"]:
            ch["_last"] = b["last_activity_at"]
            ch["last_message_preview"] = b["last_message_preview"]
    for b in state["directs"].values():
        get(b["channel"])["direct_count"] += 1
    for w in state["work"].values():
        if w["state"] not in TERMINAL_STATES:
            get(w["channel"])["open_work_count"] += 1
    out = []
    for name in sorted(chans):
        ch = chans[name]
        ch.pop("_last", None)
        ch["sessions"] = sorted(ch["sessions"])
        ch["peers"] = sorted(ch["peers"])
        ch["peer_count"] = len(ch["peers"])
        out.append(ch)
    return out


def peers(state: dict, channel: str, now_ms: int) -> list[dict]:
    """Sessions that joined ``channel``, plus peers seen speaking in it."""
    found: dict[str, dict] = {}
    for s in state["sessions"].values():
        if channel in s["channels"]:
            found[s["peer_id"]] = {"peer_id": s["peer_id"], "session_id": s["session_id"], "agent": s["agent"],
                                   "name": s["name"], "state": s["state"], "joined_at": s["opened_at"],
                                   "last_activity_at": s["last_activity_at"], "presence": _presence(s)}
    for m in state["messages"]:
        if m["channel"] == channel and m["from"] not in found:
            found[m["from"]] = {"peer_id": m["from"], "session_id": m.get("session_id"), "agent": None,
                                "name": None, "state": "unknown", "joined_at": None, "last_activity_at": m["ts"],
                                "presence": "unknown"}
        elif m["channel"] == channel:
            p = found[m["from"]]
            if p["last_activity_at"] is None or m["ts"] > p["last_activity_at"]:
                p["last_activity_at"] = m["ts"]
    return [found[k] for k in sorted(found)]


def _presence(s: dict) -> str:
    return "closed" if s["state"] == "closed" else "active"


def status(state: dict) -> dict:
    by_kind: dict[str, int] = {}
    for m in state["messages"]:
        by_kind[m["kind"]] = by_kind.get(m["kind"], 0) + 1
    work_by_state: dict[str, int] = {}
    for w in state["work"].values():
        work_by_state[w["state"]] = work_by_state.get(w["state"], 0) + 1
    chans = {c for s in state["sessions"].values() for c in s["channels"]} | {m["channel"] for m in state["messages"]}
    return {
        "sessions": len(state["sessions"]),
        "active_sessions": sum(1 for s in state["sessions"].values() if s["state"] == "active"),
        "channels": len(chans),
        "threads": len(state["threads"]),
        "direct_rooms": len(state["directs"]),
        "work_units": len(state["work"]),
        "open_work": sum(v for k, v in work_by_state.items() if k not in TERMINAL_STATES),
        "work_by_state": dict(sorted(work_by_state.items())),
        "awaiting_approval": sum(1 for w in state["work"].values() if w["state"] not in TERMINAL_STATES
                                 and (w.get("gate") or {}).get("state") == "awaiting_approval"),
        "work_transitions": state["counters"]["transitions"],
        "messages": len(state["messages"]),
        "messages_by_kind": dict(sorted(by_kind.items())),
        "events": state["event_count"],
        "diagnostics": len(state["diagnostics"]),
    }
