"""Who sees what: the inbox rule, session lookup and the small views of a message and a work unit
that the core's own rules (deadlines, delivery, ops) reason with.  Pure."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from handoff.core.model import ENVELOPE_FIELDS, TERMINAL_STATES, parse_ts
from handoff.core.reducer import expired

MESSAGE_FIELDS = ENVELOPE_FIELDS + ("workspace_id", "session_id", "hlc")


def message(msg: dict[str, Any]) -> dict[str, Any]:
    out = {k: msg.get(k) for k in MESSAGE_FIELDS}
    out["path"] = msg.get("path")
    if msg.get("refused"):
        out["refused"] = msg["refused"]
    return out


def agent_by_peer(state: dict[str, Any]) -> dict[str, str]:
    """Each session's peer id -> its agent (the one map every "who is this peer" question starts from)."""
    return {s["peer_id"]: s["agent"] for s in state["sessions"].values()}


def find_session(state: dict[str, Any], ident: str) -> dict[str, Any] | None:
    sessions = state["sessions"]
    s: dict[str, Any] | None = sessions.get(ident)
    if s is not None:
        return s
    if hasattr(sessions, "by_peer"):  # (the index looks the peer id up in a column)
        found: dict[str, Any] | None = sessions.by_peer(ident)
        return found
    for s in sessions.values():
        if s["peer_id"] == ident:
            return s
    return None


def addressed_to(msg: dict[str, Any], session: dict[str, Any]) -> bool:
    to = msg.get("to")
    return to is not None and to in (session["peer_id"], session["session_id"], session["agent"])


def _answered(msg: dict[str, Any], session: dict[str, Any], replies: Collection[str], work: dict[str, Any] | None) -> bool:
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


def inbox(state: dict[str, Any], session: dict[str, Any], acked: set[str], now_ms: int, include_all: bool = False) -> list[dict[str, Any]]:
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


def work_brief(w: dict[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    out = {k: w[k] for k in ("work_id", "state", "opened_by_peer_id", "target_peer_id", "last_activity_at")}
    out["checkpoint"] = w.get("checkpoint")
    out["overdue"] = overdue(w, now_ms)
    return out


def overdue(w: dict[str, Any], now_ms: int | None) -> bool:
    if now_ms is None or w["state"] in TERMINAL_STATES or not w.get("deadline_at"):
        return False
    deadline = parse_ts(w["deadline_at"])
    return deadline is not None and deadline <= now_ms
