"""Deadlines (AXME): overdue work, the sweep that turns it into an outcome, reminders.

Pure.  ``deadline_at`` lives on the opening envelope; ``overdue`` is derived
against an explicit ``now`` and never changes persisted state.  Only
``sweep`` writes: a participant records ``trace failed`` with
``reason_code: expired`` for each overdue unit it takes part in (AXME's
timeout outcome).  When both participants sweep on two branches, the merge
keeps the first terminal and flags the second, like any terminal race.

Reminders re-notify the *target* of an overdue unit: the n-th reminder is
due ``n * every`` after the deadline (the first at the deadline itself), at
most ``max_count`` of them.  A watcher that was down only sends the latest
one due, not a backlog.
"""
from __future__ import annotations

from typing import Any

from handoff.core import queries, work_ops
from handoff.core.model import TERMINAL_STATES, parse_ts


def deadline_ms(work: dict[str, Any]) -> int | None:
    return parse_ts(work.get("deadline_at")) if work.get("deadline_at") else None


def overdue_work(state: dict[str, Any], now_ms: int, peer: str | None = None) -> list[dict[str, Any]]:
    """Open units whose deadline has passed (optionally: where ``peer`` takes part), oldest deadline first."""
    out = []
    for w in state["work"].values():
        if not queries.overdue(w, now_ms):
            continue
        if peer is not None and peer not in (w["opened_by_peer_id"], w["target_peer_id"]):
            continue
        out.append(w)
    return sorted(out, key=lambda w: (deadline_ms(w) or 0, w["work_id"]))


def sweep(state: dict[str, Any], session: dict[str, Any], now_ms: int, given_id: str | None = None) -> list[dict[str, Any]]:
    """Drafts of ``trace failed`` (reason ``expired``) for the overdue units ``session`` takes part in."""
    drafts = []
    if given_id:  # a retry of the same sweep returns what it wrote (keys "<id>.<work_id>")
        for m in state["messages"]:
            key = (m.get("ext") or {}).get("idempotency_key") or ""
            if m["from"] == session["peer_id"] and key.startswith(f"{given_id}.") and m.get("work_id"):
                drafts.append({"_replay": m})
    for w in overdue_work(state, now_ms, session["peer_id"]):
        key = f"{given_id}.{w['work_id']}"[:128] if given_id else None
        drafts += work_ops.trace(state, session, w["work_id"], "failed", reason_code="expired",
                            message=f"deadline exceeded ({w['deadline_at']})", given_id=key)
    return drafts


def _is_target(work: dict[str, Any], session: dict[str, Any]) -> bool:
    if work["target_peer_id"] == session["peer_id"]:
        return True
    return bool(work.get("target_agent")) and work["target_peer_id"] == work["target_agent"] \
        and session["agent"] == work["target_agent"]


def reminders_due(state: dict[str, Any], session: dict[str, Any], now_ms: int, every_ms: int, max_count: int,
                  units: list[dict[str, Any]] | None = None) -> list[tuple[dict[str, Any], int]]:
    """(work, n) for each overdue unit ``session`` is the target of: the latest reminder n (0-based) due now.

    ``units``: the units to look at, when the caller knows a subset that holds every open unit with a
    deadline targeting ``session`` (``index.timer_units``); every unit of ``state`` otherwise."""
    if every_ms <= 0 or max_count <= 0:
        return []
    out = []
    for w in state["work"].values() if units is None else units:
        if w["state"] in TERMINAL_STATES or not _is_target(w, session):
            continue
        due = deadline_ms(w)
        if due is None or due > now_ms:
            continue
        n = min((now_ms - due) // every_ms, max_count - 1)
        out.append((w, int(n)))
    return sorted(out, key=lambda p: (deadline_ms(p[0]) or 0, p[0]["work_id"]))


def next_reminder_ms(state: dict[str, Any], sessions: list[dict[str, Any]], now_ms: int, every_ms: int, max_count: int,
                     units: list[dict[str, Any]] | None = None) -> int | None:
    """When the next reminder (or first deadline) falls due for any of ``sessions``; None if never.
    (``units`` as for ``reminders_due``.)"""
    if every_ms <= 0 or max_count <= 0:
        return None
    best = None
    for w in state["work"].values() if units is None else units:
        if w["state"] in TERMINAL_STATES or not any(_is_target(w, s) for s in sessions):
            continue
        due = deadline_ms(w)
        if due is None:
            continue
        if due > now_ms:
            at = due
        else:
            n = (now_ms - due) // every_ms + 1
            if n >= max_count:
                continue
            at = due + n * every_ms
        best = at if best is None else min(best, at)
    return best
