"""State -> the JSON shapes users and scripts rely on (pure).

Field names follow the seeds: envelopes carry AGH's fields, work units the
``NetworkWorkPayload`` fields, handoffs Hivemind's.  Every list is in event
order or sorted, never in dict/set order, so output is byte-stable.
"""
from __future__ import annotations

from handoff.core.model import ENVELOPE_FIELDS, TERMINAL_STATES, parse_ts
from handoff.core.reducer import expired

MESSAGE_FIELDS = ENVELOPE_FIELDS + ("workspace_id", "session_id", "hlc")


def message(msg: dict) -> dict:
    out = {k: msg.get(k) for k in MESSAGE_FIELDS}
    out["path"] = msg.get("path")
    if msg.get("refused"):
        out["refused"] = msg["refused"]
    return out


def find_session(state: dict, ident: str) -> dict | None:
    sessions = state["sessions"]
    s = sessions.get(ident)
    if s is not None:
        return s
    if hasattr(sessions, "by_peer"):  # (the index looks the peer id up in a column)
        return sessions.by_peer(ident)
    for s in sessions.values():
        if s["peer_id"] == ident:
            return s
    return None


def session_view(s: dict) -> dict:
    keys = ("session_id", "peer_id", "agent", "name", "channels", "workspace", "state", "opened_at", "closed_at",
            "last_activity_at")
    return {k: s.get(k) for k in keys}


def addressed_to(msg: dict, session: dict) -> bool:
    to = msg.get("to")
    return to is not None and to in (session["peer_id"], session["session_id"], session["agent"])


def _answered(msg: dict, session: dict, replies: dict, work: dict | None) -> bool:
    """Has this session answered ``msg``?  (A reply, or any later move of its own on the same work.)"""
    if msg["id"] in replies:
        return True
    if work is not None:
        peer = session["peer_id"]
        seen = False
        for h in work["history"]:
            if h["message_id"] == msg["id"]:
                seen = True
            elif seen and h["from"] == peer and not h["refused"]:
                return True
        if work["state"] in TERMINAL_STATES and msg["from"] != work["target_peer_id"] \
                and session["peer_id"] != work["opened_by_peer_id"]:
            # a request whose work is over needs nothing more from its target
            return True
    return False


def inbox(state: dict, session: dict, acked: set[str], now_ms: int, include_all: bool = False) -> list[dict]:
    """What waits for ``session``: directed messages and channel broadcasts, until answered or acked."""
    peer = session["peer_id"]
    channels = set(session["channels"])
    replies: set[str] = set()
    for m in state["messages"]:
        if m["from"] == peer:
            for key in ("reply_to", "causation_id"):
                if m.get(key):
                    replies.add(m[key])
            body = m.get("body") or {}
            if m["kind"] == "receipt" and body.get("for_id"):
                replies.add(body["for_id"])
    entries = []
    for m in state["messages"]:
        if m["from"] == peer or m.get("refused") or m["kind"] not in ("say", "capability", "receipt", "trace"):
            continue
        if addressed_to(m, session):
            pass
        elif m.get("to") is None and m["surface"] == "thread" and m["channel"] in channels \
                and m["hlc"] >= session.get("opened_hlc", ""):
            pass  # a broadcast in a channel this session joined, since it joined
        else:
            continue
        is_acked = m["id"] in acked
        is_expired = expired(m, now_ms)
        if not include_all and (is_acked or is_expired):
            continue  # (decided before the work unit is looked up: that is a read of the index)
        work = state["work"].get(m["work_id"]) if m.get("work_id") else None
        answered = _answered(m, session, replies, work)
        if not include_all and answered:
            continue
        entry = message(m)
        entry.update(answered=answered, acked=is_acked, expired=is_expired)
        if work is not None:
            entry["work"] = work_brief(work, now_ms)
        entries.append(entry)
    return entries


def work_brief(w: dict, now_ms: int | None = None) -> dict:
    out = {k: w[k] for k in ("work_id", "state", "opened_by_peer_id", "target_peer_id", "last_activity_at")}
    out["checkpoint"] = w.get("checkpoint")
    out["overdue"] = overdue(w, now_ms)
    return out


def overdue(w: dict, now_ms: int | None) -> bool:
    if now_ms is None or w["state"] in TERMINAL_STATES or not w.get("deadline_at"):
        return False
    deadline = parse_ts(w["deadline_at"])
    return deadline is not None and deadline <= now_ms


WORK_FIELDS = ("work_id", "workspace_id", "channel", "surface", "thread_id", "direct_id", "opened_by_peer_id",
               "opened_session_id", "target_peer_id", "state", "opened_at", "last_activity_at", "terminal_at")


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
    })
    if history:
        out["history"] = w["history"]
        out["diagnostics"] = w["diagnostics"]
    return out


def _waiting_on(w: dict) -> str | None:
    if w["state"] in TERMINAL_STATES:
        return None
    return w["opened_by_peer_id"] if w["state"] == "needs_input" else w["target_peer_id"]


HANDOFF_STATUSES = ("pending", "accepted", "rejected", "canceled", "failed")


def handoff_status(w: dict) -> str:
    """Hivemind's status: the first response; ``pending`` while unanswered and open.

    Work that ended before any answer (withdrawn, or failed by a sweep) is
    no longer pending: it shows its terminal state, ``canceled`` or ``failed``.
    """
    if w.get("response"):
        return w["response"]
    return w["state"] if w["state"] in TERMINAL_STATES else "pending"


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
        "work_transitions": state["counters"]["transitions"],
        "messages": len(state["messages"]),
        "messages_by_kind": dict(sorted(by_kind.items())),
        "events": state["event_count"],
        "diagnostics": len(state["diagnostics"]),
    }
