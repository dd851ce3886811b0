"""Human checkpoints: a gate on a work unit that only a person may open (approve) or end (deny).

Pure.  A gate opens in one of two ways:

* at the request: the request body names an approver (``body.approval_by``, ``handoff request
  --approval-by``), or a rule of ``approvals.require`` in the config matches the request's channel or
  target agent.  Its name is ``accept``: the receiver may not accept (receipt accepted, or a target
  trace working/needs_input/completed) until a person approves;
* mid-way: the target's ``trace working`` carries ``body.gate`` (``handoff progress --gate NAME``); the
  target may not report progress or complete until a person approves.

Either participant may still fail or cancel gated work.  A person's decision is an ``approval`` event
(``body: {decision: approved|denied, for_id: <event that opened the gate>, gate, by, reason}``), written
with no session.  ``approved`` lifts the gate; ``denied`` fails the work (``terminal_reason: denied``).
The reducer applies the first decision in event order and flags the rest (``gate_decided``); a decision
whose ``by`` is not an approver is ignored (``not_approver``), as is one for a gate that is not open
(``no_open_gate``) or for terminal work (``work_closed``).

Who is a person: ``approvals.approvers`` (git emails or names; shell patterns allowed), narrowed to the
gate's own approver when it names one of them.  An identity listed under ``identity.agents`` is an
agent's and never approves.  ``verify`` holds the adding commit's author to the same list.
"""
from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from handoff.core.model import TERMINAL_STATES

KIND = "approval"
DECISIONS = ("approved", "denied")
AWAITING = "awaiting_approval"
REQUEST_GATE = "accept"
# what an open gate holds back: (kind, status or state) sent by the target
_HELD = {("receipt", "accepted"), ("trace", "working"), ("trace", "needs_input"), ("trace", "completed")}
_UNSAFE_PEER = re.compile(r"[^a-z0-9._-]+")


# --------------------------------------------------------------- config


def policy_of(config: dict[str, Any]) -> dict[str, Any]:
    """``approvals`` of the config, normalised (plain, sorted, JSON-ready: the index keys its cache by it).

    ``approvers``: person identities (patterns); ``require``: rules ``{channel: X}`` / ``{agent: Y}``;
    ``agents``: the emails ``identity.agents`` gives named agents (never approvers)."""
    raw = config.get("approvals") if isinstance(config, dict) else None
    raw = raw if isinstance(raw, dict) else {}
    approvers = raw.get("approvers")
    approvers = sorted({a for a in approvers if isinstance(a, str) and a}) if isinstance(approvers, list) else []
    rules = []
    require = raw.get("require")
    for rule in require if isinstance(require, list) else []:
        if isinstance(rule, dict):
            clean = {k: rule[k] for k in ("channel", "agent") if isinstance(rule.get(k), str)}
            if clean:
                rules.append(clean)
    ident = config.get("identity") if isinstance(config, dict) else None
    agents = ident.get("agents") if isinstance(ident, dict) else None
    agent_emails = sorted({e for name, v in agents.items() if name != "*"
                           for e in (v if isinstance(v, list) else [v]) if isinstance(e, str)}) \
        if isinstance(agents, dict) else []
    rules.sort(key=lambda r: json.dumps(r, sort_keys=True))
    return {"approvers": approvers, "require": rules, "agents": agent_emails}


EMPTY: dict[str, Any] = {"approvers": [], "require": [], "agents": []}


def policy_key(policy: dict[str, Any] | None) -> str:
    return json.dumps(policy or EMPTY, sort_keys=True, separators=(",", ":"))


def matches(identity: str | None, patterns: list[str]) -> bool:
    if not identity:
        return False
    return any(fnmatch.fnmatchcase(identity.lower(), p.lower()) for p in patterns)


# ---------------------------------------------------------------- gates


def required(policy: dict[str, Any] | None, ev: dict[str, Any]) -> bool:
    """A rule of ``approvals.require`` matches this request (its channel, or the agent it goes to)."""
    to = ev.get("to") or ""
    agent = to.split(".", 1)[0]  # (an agent name, or a peer id ``<agent or name>.<session>``)
    for rule in (policy or EMPTY)["require"]:
        if ("channel" not in rule or rule["channel"] == ev.get("channel")) and \
                ("agent" not in rule or rule["agent"] in (to, agent)):
            return True
    return False


def _gate(name: str, ev: dict[str, Any], approver: Any, kind: str) -> dict[str, Any]:
    return {"name": name, "state": AWAITING, "kind": kind, "opened_by": ev["id"], "opened_at": ev["ts"],
            "requested_by": ev["from"], "approver": approver if isinstance(approver, str) else None,
            "decided_at": None, "decided_by": None, "decision_id": None, "reason": None}


def _with_gate(work: dict[str, Any], gate: dict[str, Any]) -> dict[str, Any]:
    gates = list(work.get("gates") or [])
    if gates and gates[-1]["opened_by"] == gate["opened_by"]:
        gates[-1] = gate
    else:
        gates.append(gate)
    return dict(work, gate=gate, gates=gates)


def on_request(work: dict[str, Any], ev: dict[str, Any], policy: dict[str, Any] | None) -> dict[str, Any]:
    """The unit a request just opened, with its gate when it asks for one or a config rule does."""
    body = ev.get("body") or {}
    if body.get("approval_by") is None and not required(policy, ev):
        return work
    return _with_gate(work, _gate(body.get("gate") or REQUEST_GATE, ev, body.get("approval_by"), "request"))


def on_trace(work: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    """A target's ``trace working`` with ``body.gate`` opens a gate mid-way (``work`` has applied it)."""
    body = ev.get("body") or {}
    if ev["kind"] != "trace" or body.get("state") != "working" or not body.get("gate"):
        return work
    return _with_gate(work, _gate(body["gate"], ev, body.get("approval_by"), "progress"))


def open_gate(work: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate of active work still waiting for a person (None: none)."""
    gate: dict[str, Any] | None = (work or {}).get("gate")
    if gate is None or gate["state"] != AWAITING or work is None or work["state"] in TERMINAL_STATES:
        return None
    return gate


def held(work: dict[str, Any], ev: dict[str, Any]) -> tuple[str, str] | None:
    """``awaiting_approval`` when an open gate holds ``ev`` back (for ``lifecycle``'s guards)."""
    gate = open_gate(work)
    if gate is None or ev["from"] != work["target_peer_id"]:
        return None
    body = ev.get("body") or {}
    if (ev["kind"], body.get("status") if ev["kind"] == "receipt" else body.get("state")) not in _HELD:
        return None
    who = f" ({gate['approver']})" if gate.get("approver") else ""
    return (AWAITING, f"{work['work_id']} waits at gate {gate['name']!r} for a person's approval{who}")


def who_may(gate: dict[str, Any], policy: dict[str, Any] | None) -> list[str]:
    """The identities (patterns) that may decide ``gate``: the gate's approver when it is one of the
    configured approvers (or there are none), else the configured approvers."""
    approvers = (policy or EMPTY)["approvers"]
    named = gate.get("approver")
    if named and (not approvers or matches(named, approvers)):
        return [named]
    return list(approvers)


def may_decide(identity: str | None, gate: dict[str, Any], policy: dict[str, Any] | None) -> bool:
    return matches(identity, who_may(gate, policy)) and not matches(identity, (policy or EMPTY)["agents"])


def apply(work: dict[str, Any] | None, ev: dict[str, Any],
          policy: dict[str, Any] | None) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """Apply one ``approval`` event: (the new unit, or the old one with a diagnostic; the refusal)."""
    body = ev.get("body") or {}
    if work is None:
        return None, ("work_not_found", f"approval for unknown work {ev.get('work_id')}")
    gate = work.get("gate")
    gates = {g["opened_by"]: g for g in work.get("gates") or ()}
    target = gates.get(body.get("for_id"))
    refusal = None
    if target is not None and target["state"] != AWAITING:  # (a denial also ends the work: say which came first)
        refusal = ("gate_decided", f"gate {target['name']!r} of {work['work_id']} was already {target['state']} "
                                   f"by {target['decided_by']} ({target['decision_id']}); this decision is ignored")
    elif work["state"] in TERMINAL_STATES:
        refusal = ("work_closed", f"{work['work_id']} is already {work['state']}; the decision is ignored")
    elif target is None or gate is None or target["opened_by"] != gate["opened_by"]:
        refusal = ("no_open_gate", f"{work['work_id']} has no open gate opened by {body.get('for_id')}")
    elif not may_decide(body.get("by"), gate, policy):
        refusal = ("not_approver", f"{body.get('by')!r} is not an approver of gate {gate['name']!r} "
                                   f"(approvals.approvers: {', '.join(who_may(gate, policy)) or 'none'})")
    entry = {"message_id": ev["id"], "kind": KIND, "from": ev["from"], "ts": ev["ts"],
             "status": body.get("decision"), "state_before": work["state"], "state_after": work["state"],
             "refused": refusal[0] if refusal else None}
    if refusal is not None:
        return dict(work, history=work["history"] + [entry], diagnostics=work["diagnostics"] + [
            {"message_id": ev["id"], "from": ev["from"], "kind": KIND, "reason_code": refusal[0],
             "message": refusal[1]}]), refusal
    assert gate is not None
    decided = dict(gate, state=body["decision"], decided_at=ev["ts"], decided_by=body.get("by"),
                   decision_id=ev["id"], reason=body.get("reason"))
    new = _with_gate(work, decided)
    new["last_activity_at"] = ev["ts"]
    if body["decision"] == "denied":
        new.update(state="failed", terminal_reason="denied", terminal_at=ev["ts"],
                   transitions=work["transitions"] + 1,
                   last_message=body.get("reason") or f"denied at gate {gate['name']!r}")
        entry["state_after"] = "failed"
    new["history"] = work["history"] + [entry]
    return new, None


def fold_into(work: dict[str, Any], counters: dict[str, int], ev: dict[str, Any],
              policy: dict[str, Any] | None) -> tuple[str, str] | None:
    """``apply`` inside the reducer's fold: ``work`` (work_id -> unit) and ``counters`` are updated."""
    before = work.get(ev["work_id"])
    after, refusal = apply(before, ev, policy)
    if after is not None:
        counters["transitions"] += before is not None and after["state"] != before["state"]
        work[ev["work_id"]] = after
    return refusal


# ---------------------------------------------------------------- writes


def person_peer(identity: str) -> str:
    """The ``from`` of a person's event: ``person.`` and the identity folded into a peer id."""
    folded = _UNSAFE_PEER.sub("-", identity.lower()).strip("-._") or "unknown"
    return ("person." + folded)[:128]


def verify_findings(new_events: list[tuple[str, dict[str, Any]]], head_state: dict[str, Any],
                    policy: dict[str, Any] | None, email_of: Any) -> list[dict[str, Any]]:
    """``verify``: every new approval must be added by a commit whose author is one of the gate's approvers
    (and not an agent's identity), whatever its ``by`` says."""
    out = []
    for path, ev in new_events:
        if ev["kind"] != KIND:
            continue
        w = head_state["work"].get(ev.get("work_id")) or {}
        gate = next((g for g in w.get("gates") or () if g["opened_by"] == (ev.get("body") or {}).get("for_id")), None)
        allowed = who_may(gate, policy) if gate else list((policy or EMPTY)["approvers"])
        email = email_of(path)
        if not matches(email, allowed) or matches(email, (policy or EMPTY)["agents"]):
            out.append({"severity": "error", "path": path, "code": "approval_not_by_approver",
                        "message": f"an approval committed by {email or 'nobody'}, who is not an approver of this "
                                   f"gate (allowed: {', '.join(allowed) or 'none'}; approvals.approvers)"})
    return out


def wait_ms(work: dict[str, Any], now_ms: int, parse_ms: Any) -> int:
    """Milliseconds the unit's gates waited for a person (an open one: until ``now_ms``)."""
    total = 0
    for g in work.get("gates") or ():
        start = parse_ms(g["opened_at"])
        end = parse_ms(g["decided_at"]) if g.get("decided_at") else (
            parse_ms(work["terminal_at"]) if work.get("terminal_at") else now_ms)
        if start is not None and end is not None and end > start:
            total += end - start
    return total
