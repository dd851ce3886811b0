"""What a watcher should deliver to a session now, as a pure function of state.

A *notification* is a JSON object with a ``key`` the watcher's cursor
remembers once it has been delivered:

- ``message``: an unanswered inbox entry (the envelope plus its work
  state, as ``handoff inbox`` shows it); key = the message id.  Own
  messages, other pairs' direct rooms, answered, acknowledged and expired
  entries never qualify (``queries.inbox`` decides).
- ``reminder``: an overdue unit this session is the target of
  (``deadlines.reminders_due``); key = ``remind:<work_id>:<n>``.
- ``lease_lost``: a claim of this session that lost a race to another
  holder (``leases``); key = ``lease_lost:<event_id>``.

Also here: the environment a ``--exec`` hook gets (ids and names only,
never message text) and the retry schedule for failing hooks.
"""
from __future__ import annotations

from typing import Any

from handoff.core import deadlines, leases, queries

EXEC_BACKOFF_S = (1, 2, 4, 8, 16, 30, 60)


def _base(session: dict[str, Any], kind: str, key: str) -> dict[str, Any]:
    return {"notification": kind, "key": key, "for_session": session["session_id"], "for_peer": session["peer_id"]}


def due(state: dict[str, Any], session: dict[str, Any], *, acked: set[str], delivered: set[str], now_ms: int,
        remind_every_ms: int = 0, remind_max: int = 0, units: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Notifications for ``session`` not yet in ``delivered``, in event order (messages, then reminders, leases).

    ``units``: a subset of the work units holding every open unit with a deadline that targets
    ``session`` (``index.timer_units``), so reminders need not look at every unit."""
    out = []
    for entry in queries.inbox(state, session, acked, now_ms):
        if entry["id"] not in delivered:
            out.append({**_base(session, "message", entry["id"]), **entry})
    reminders = [(w, n) for w, n in deadlines.reminders_due(state, session, now_ms, remind_every_ms, remind_max, units)
                 if f"remind:{w['work_id']}:{n}" not in delivered]
    by_id = {m["id"]: m for m in state["messages"]} if reminders else {}
    for w, n in reminders:
        key = f"remind:{w['work_id']}:{n}"
        opener = by_id.get(w["opener_id"])
        note = {**_base(session, "reminder", key), **(queries.message(opener) if opener else {}),
                "reminder": n + 1, "reminders_max": remind_max, "work": queries.work_brief(w, now_ms),
                "deadline_at": w.get("deadline_at")}
        out.append(note)
    if state.get("leases"):
        peer = session["peer_id"]
        # (only units this peer claimed can hold a losing claim of its own)
        for wid, lease in leases.views_for(state, now_ms, leases.claimed_by(state, peer)).items():
            for c in lease["losers"]:
                key = f"lease_lost:{c['event_id']}"
                if c["from"] != peer or key in delivered:
                    continue
                out.append({**_base(session, "lease_lost", key), "work_id": wid, "event_id": c["event_id"],
                            "holder": c["holder"], "reason_code": c["reason_code"], "message": c["message"],
                            "work": queries.work_brief(state["work"][wid], now_ms)})
    return out


def live_keys(state: dict[str, Any], session: dict[str, Any], now_ms: int) -> set[str]:
    """Message keys that can still come up for ``session`` (what a compacted cursor must keep)."""
    return {e["id"] for e in queries.inbox(state, session, set(), now_ms, include_all=True)}


def exec_env(note: dict[str, Any], repo: str) -> dict[str, str]:
    """Environment variables for a ``--exec`` hook: identifiers only (all grammar-checked), no text."""
    work = note.get("work") or {}
    values = {
        "HANDOFF_NOTIFICATION": note["notification"],
        "HANDOFF_KEY": note["key"],
        "HANDOFF_SESSION": note["for_session"],
        "HANDOFF_PEER": note["for_peer"],
        "HANDOFF_MESSAGE_ID": note.get("id") or "",
        "HANDOFF_KIND": note.get("kind") or "",
        "HANDOFF_FROM": note.get("from") or "",
        "HANDOFF_CHANNEL": note.get("channel") or "",
        "HANDOFF_THREAD_ID": note.get("thread_id") or "",
        "HANDOFF_DIRECT_ID": note.get("direct_id") or "",
        "HANDOFF_WORK_ID": note.get("work_id") or work.get("work_id") or "",
        "HANDOFF_WORK_STATE": work.get("state") or "",
        "HANDOFF_REPO": repo,
    }
    return {k: _clean(v) for k, v in values.items()}


def _clean(value: object) -> str:
    s = value if isinstance(value, str) else str(value)
    return "".join(ch for ch in s if ch.isprintable())[:512]


def retry_delay_s(failures: int) -> float:
    """Seconds to wait before attempt ``failures + 1`` of a failing hook."""
    return float(EXEC_BACKOFF_S[min(max(failures, 1), len(EXEC_BACKOFF_S)) - 1])
