"""Which work units a watcher's timers can concern (pure).

A long-running ``handoff watch`` wakes up on every new event file.  Besides
the inbox it asks two questions that depend on the clock: which overdue
units are due a reminder (``deadlines.reminders_due``) and when the next
one falls due (``deadlines.next_reminder_ms``).  Both only ever look at
*open* units that have a deadline, and only at those whose target is one of
the watched sessions.  ``row`` says, for one unit, whether it can matter and
to whom, so the index keeps one small row per such unit (table ``timers``,
written at fold time) and a wake-up reads a handful of units instead of
every unit in the history.

``row`` must never leave out a unit those functions would report: the index
tests compare the table with ``row`` applied to a full reduce, and the
deadlines functions still apply their own rules to what they are given.
"""
from __future__ import annotations

from typing import Any

from handoff.core.model import TERMINAL_STATES, parse_ts


def row(work: dict[str, Any]) -> tuple[int, str | None, str | None] | None:
    """(deadline in ms, target peer, target agent while the unit is addressed to the agent's name) for an open
    unit with a deadline; None for every other unit."""
    if work.get("state") in TERMINAL_STATES or not work.get("deadline_at"):
        return None
    due = parse_ts(work["deadline_at"])
    if due is None:
        return None
    agent = work.get("target_agent")
    bound_to_agent = bool(agent) and work.get("target_peer_id") == agent
    return due, work.get("target_peer_id"), agent if bound_to_agent else None


def may_concern(trow: tuple[int, str, str | None], peers: set[str], agents: set[str]) -> bool:
    """Could ``deadlines._is_target`` be true for a unit with this row and a session whose peer id is in
    ``peers`` and whose agent is in ``agents`` (one entry each per watched session)?"""
    _due, target, agent = trow
    return target in peers or (agent is not None and agent in agents)
