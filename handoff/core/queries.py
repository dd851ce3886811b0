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
    """What waits for ``session``: directed messages and channel broadcasts, until answered or acked.

    Each entry is the message plus ``answered``, ``acked``, ``expired`` and three readings of it:
    ``news`` (an update on work this session asked for that has ended: nothing to answer, it stays
    until acked), ``asks`` (the question of a ``need-input`` trace, else None) and ``folded_into``
    (the receipt an ``accept`` wrote just before this trace: the two say one thing, else None)."""
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
    last_of_work: dict[str, dict[str, Any]] = {}
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
        body = m.get("body") or {}
        entry.update(answered=answered, acked=is_acked, expired=is_expired,
                     news=work is not None and work["state"] in TERMINAL_STATES and work["opened_by_peer_id"] == peer,
                     asks=(body.get("message") or "") if m["kind"] == "trace" and body.get("state") == "needs_input"
                     else None,
                     folded_into=_accept_receipt(last_of_work.get(m["work_id"]), m) if work is not None else None)
        if work is not None:
            entry["work"] = work_brief(work, now_ms)
            last_of_work[m["work_id"]] = entry
        entries.append(entry)
    return entries


def _accept_receipt(before: dict[str, Any] | None, m: dict[str, Any]) -> str | None:
    """``accept`` writes ``receipt accepted`` then ``trace working``: the trace's id of that receipt."""
    if before is None or m["kind"] != "trace" or (m.get("body") or {}).get("state") != "working":
        return None
    if before["kind"] == "receipt" and before["from"] == m["from"] and (before.get("body") or {}).get("status") == "accepted":
        return str(before["id"])
    return None


def distinct(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries a person counts: an accept's trace folded into its receipt (both listed) is one."""
    shown = {e["id"] for e in entries}
    return [e for e in entries if e.get("folded_into") not in shown]


def inbox_counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    """``waiting``: entries still to answer (an accept's trace counted once, with its receipt);
    ``news``: ended work's updates not yet acked.  Answered, acked and expired entries are neither."""
    open_ = [e for e in distinct(entries) if not (e["answered"] or e["acked"] or e["expired"])]
    return {"waiting": sum(1 for e in open_ if not e.get("news")), "news": sum(1 for e in open_ if e.get("news"))}


def handoff_status(w: dict[str, Any]) -> str:
    """Hivemind's status: the first response; ``pending`` while unanswered and open.

    Work that ended before any answer (withdrawn, or failed by a sweep) is
    no longer pending: it shows its terminal state, ``canceled`` or ``failed``.
    """
    if w.get("response"):
        return str(w["response"])
    return str(w["state"]) if w["state"] in TERMINAL_STATES else "pending"


def work_brief(w: dict[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    out = {k: w[k] for k in ("work_id", "state", "opened_by_peer_id", "target_peer_id", "last_activity_at")}
    out["status"] = handoff_status(w)
    out["checkpoint"] = w.get("checkpoint")
    out["overdue"] = overdue(w, now_ms)
    return out


def overdue(w: dict[str, Any], now_ms: int | None) -> bool:
    if now_ms is None or w["state"] in TERMINAL_STATES or not w.get("deadline_at"):
        return False
    deadline = parse_ts(w["deadline_at"])
    return deadline is not None and deadline <= now_ms
