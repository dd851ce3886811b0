"""The ``work_id`` lifecycle: AGH Network's rules as a pure state machine.

One function, ``apply``, takes the current work unit (or None) and one
conversation envelope, and returns the new unit plus the reason code if the
envelope was refused.  The writer calls it before publishing (refuse at
write); the reducer calls it on every envelope in event order (flag at read),
so a merge that brings in two terminals applies the first and reports the
second, identically on every machine.

Guards, in AGH's order: container, participant, counterparty, terminal,
legal transition.  Decisions where AGH's documents disagree:
- ``receipt accepted`` leaves the state unchanged (the reference
  implementation); the ``accept`` verb also writes ``trace working``, so both
  readings agree on disk.
- receipts accepted/rejected come from the target, ``receipt canceled`` from
  the initiator; traces working/needs_input/completed from the target; traces
  failed/canceled from either participant.
- a work unit addressed to an agent name (``to: reviewer``) binds its target
  to the first session of that agent that answers.
- the first admission decision is the handoff's response: ``receipt
  rejected`` after an acceptance still fails the work (AGH) but the handoff
  stays ``accepted``; a target trace working/needs_input/completed without a
  receipt counts as the acceptance.

Because every guard but ``work_closed`` depends only on the opener and the
message itself (and a terminal trace is legal from every active state), a
merge can never make terminal work active again, for work addressed to a
peer: whatever concurrent events are ordered before a terminal event, the
unit ends terminal.  (Work addressed to an agent name is the exception: two
of its sessions answering on two branches race for the binding, and the
loser's events are refused as ``not_target``.)
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from handoff.core import approvals
from handoff.core.model import TERMINAL_STATES

AgentOf = Callable[[str], "str | None"]

# trace state -> states it may be reached from
_TRACE_FROM = {
    "working": {"submitted", "working", "needs_input"},
    "needs_input": {"submitted", "working"},
    "completed": {"submitted", "working", "needs_input"},
    "failed": {"submitted", "working", "needs_input"},
    "canceled": {"submitted", "working", "needs_input"},
}


# target traces that answer a handoff without an explicit receipt: the target took it on
_IMPLICIT_ACCEPT = ("working", "needs_input", "completed")


def container(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (ev.get("channel"), ev.get("surface"), ev.get("thread_id") or ev.get("direct_id"))


def open_work(ev: dict[str, Any], target_is_agent: bool) -> dict[str, Any]:
    body = ev.get("body") or {}
    return {
        "work_id": ev["work_id"],
        "workspace_id": ev.get("workspace_id"),
        "channel": ev["channel"],
        "surface": ev["surface"],
        "thread_id": ev.get("thread_id"),
        "direct_id": ev.get("direct_id"),
        "opened_by_peer_id": ev["from"],
        "opened_session_id": ev.get("session_id"),
        "target_peer_id": ev["to"],
        "target_agent": ev["to"] if target_is_agent else None,
        "state": "submitted",
        "opened_at": ev["ts"],
        "last_activity_at": ev["ts"],
        "terminal_at": None,
        "opener_id": ev["id"],
        "intent": body.get("intent"),
        "description": body.get("text"),
        "context": body.get("context"),
        "deadline_at": ev.get("deadline_at") or body.get("deadline"),
        "trace_id": ev.get("trace_id"),
        "accepted_at": None,
        "accepted_by": None,
        "responded_at": None,
        "response": None,
        "reject_reason": None,
        "terminal_reason": None,
        "result": None,
        "checkpoint": None,
        "checkpoint_at": None,
        "last_message": body.get("text"),
        "transitions": 0,
        "history": [],
        "diagnostics": [],
        "gate": None,
        "gates": [],
    }


def _refusal(work: dict[str, Any], ev: dict[str, Any]) -> tuple[str, str] | None:
    """The first guard ``ev`` fails against ``work``, as (reason_code, message); None if it passes."""
    kind, sender, body = ev["kind"], ev["from"], ev.get("body") or {}
    if container(ev) != (work["channel"], work["surface"], work["thread_id"] or work["direct_id"]):
        where = work["thread_id"] or work["direct_id"]
        return ("work_container_mismatch",
                f"{work['work_id']} is bound to {work['channel']}/{where}; open a new work_id to continue elsewhere")
    initiator, target = work["opened_by_peer_id"], work["target_peer_id"]
    if sender not in (initiator, target):
        return ("not_target", f"{sender} is neither the initiator ({initiator}) nor the target ({target}) "
                              f"of {work['work_id']}")
    counterparty = target if sender == initiator else initiator
    if kind in ("say", "capability") and ev.get("to") != counterparty:
        return ("not_target", f"a message on {work['work_id']} from {sender} must be addressed to {counterparty}")
    if work["state"] in TERMINAL_STATES:
        return ("work_closed", f"{work['work_id']} is already {work['state']}; terminal states are final")
    gated = approvals.held(work, ev)  # (a person's checkpoint: see core/approvals.py)
    if gated is not None:
        return gated
    if kind == "receipt":
        status = body.get("status")
        if status in ("accepted", "rejected") and sender != target:
            return ("not_target", f"only the target ({target}) may {status[:-2]} {work['work_id']}")
        if status == "accepted" and work["response"] is not None:
            return ("already_responded", f"{work['work_id']} was already {work['response']}")
        if status == "canceled" and sender != initiator:
            return ("not_target", "receipt canceled is the initiator's withdrawal; the target cancels with a trace")
    if kind == "trace":
        state: Any = body.get("state")
        if state in ("working", "needs_input", "completed") and sender != target:
            return ("not_target", f"only the target ({target}) reports {state} on {work['work_id']}")
        if work["state"] not in _TRACE_FROM.get(state, set()):
            return ("invalid_transition", f"{work['work_id']} cannot move from {work['state']} to {state}")
    return None


def _bind_agent_target(work: dict[str, Any], ev: dict[str, Any], agent_of: AgentOf) -> dict[str, Any]:
    """A unit addressed to an agent name binds to the first of its sessions that answers."""
    if work.get("target_agent") and work["target_peer_id"] == work["target_agent"] \
            and ev["from"] != work["opened_by_peer_id"] and agent_of(ev["from"]) == work["target_agent"]:
        work = dict(work, target_peer_id=ev["from"])
    return work


def apply(work: dict[str, Any] | None, ev: dict[str, Any], agent_of: AgentOf = lambda p: None,
          peer_is_agent: Callable[[str], bool] = lambda p: False) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """Apply one conversation envelope that carries a work_id.

    Returns ``(new_work, refusal)``.  ``new_work`` is a new dict (the input is
    never mutated); when the envelope is refused it is the old unit with the
    refusal recorded in its diagnostics.  ``work`` is None for an unknown id.
    """
    kind = ev["kind"]
    if work is None:
        if kind not in ("say", "capability"):
            return None, ("work_not_found", f"{kind} for unknown work {ev['work_id']}: receipts and traces cannot open work")
        if not ev.get("to"):
            return None, ("invalid_surface", f"opening {ev['work_id']} needs `to` (the target)")
        work = open_work(ev, peer_is_agent(ev["to"]))
        work["history"].append(_entry(ev, None, "submitted", None))
        work["transitions"] = 1
        return work, None
    candidate = _bind_agent_target(work, ev, agent_of)
    refusal = _refusal(candidate, ev)
    new = copy.copy(work)
    new["history"] = list(work["history"])
    if refusal is not None:
        new["diagnostics"] = list(work["diagnostics"]) + [
            {"message_id": ev["id"], "from": ev["from"], "kind": kind, "reason_code": refusal[0],
             "message": refusal[1]}]
        new["history"].append(_entry(ev, work["state"], work["state"], refusal[0]))
        return new, refusal
    new.update(target_peer_id=candidate["target_peer_id"])
    before = new["state"]
    body = ev.get("body") or {}
    new["last_activity_at"] = ev["ts"]
    if kind == "receipt":
        status = body["status"]
        if status == "accepted":
            new.update(response="accepted", accepted_at=ev["ts"], accepted_by=ev["from"], responded_at=ev["ts"])
        elif status == "rejected":
            # AGH: rejected moves any active work to failed.  The first admission decision is the
            # handoff's answer (Hivemind), so a rejection after an acceptance fails the work but
            # leaves ``response`` as it was.
            new.update(state="failed", terminal_reason="rejected",
                       reject_reason=body.get("detail") or body.get("reason_code"))
            if new["response"] is None:
                new.update(response="rejected", responded_at=ev["ts"])
        elif status == "canceled":
            new.update(state="canceled", terminal_reason="canceled")
    elif kind == "trace":
        state = body["state"]
        new["state"] = state
        if state in _IMPLICIT_ACCEPT and new["response"] is None:  # the target took the work on
            new.update(response="accepted", accepted_at=ev["ts"], accepted_by=ev["from"], responded_at=ev["ts"])
        if body.get("checkpoint") is not None:
            new.update(checkpoint=body["checkpoint"], checkpoint_at=ev["ts"])
        if state in TERMINAL_STATES:
            new["terminal_reason"] = body.get("reason_code") or state
            if body.get("result") is not None:
                new["result"] = body["result"]
        if body.get("message"):
            new["last_message"] = body["message"]
        new = approvals.on_trace(new, ev)
    else:  # say / capability continuation
        if new["state"] == "needs_input" and ev["from"] == new["opened_by_peer_id"]:
            new["state"] = "working"
        if body.get("text"):
            new["last_message"] = body["text"]
    if new["state"] in TERMINAL_STATES and before not in TERMINAL_STATES:
        new["terminal_at"] = ev["ts"]
    if new["state"] != before:
        new["transitions"] = work["transitions"] + 1
    new["history"].append(_entry(ev, before, new["state"], None))
    return new, None


def _entry(ev: dict[str, Any], before: str | None, after: str | None, refused: str | None) -> dict[str, Any]:
    body = ev.get("body") or {}
    return {"message_id": ev["id"], "kind": ev["kind"], "from": ev["from"], "ts": ev["ts"],
            "status": body.get("status") or body.get("state"), "state_before": before, "state_after": after,
            "refused": refused}
