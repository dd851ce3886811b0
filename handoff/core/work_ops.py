"""The work verbs: accept, reject, trace, cancel, reply and request (a say that opens a work unit).

Each builds drafts addressed from the work unit's history and checks them, in order, against the
lifecycle (``message_ops.check_lifecycle``); a retry with the same ``--id`` returns every original.
"""
from __future__ import annotations

import re
from collections import ChainMap
from typing import Any

from handoff.core import approvals, ids, lifecycle, queries
from handoff.core.arguments import parse_time
from handoff.core.message_ops import check_lifecycle, parents, send
from handoff.core.model import TERMINAL_STATES
from handoff.core.retries import VERB_FIELDS, apply_idempotency, replay_or_none, sub_key
from handoff.errors import HandoffError


def find_work(state: dict[str, Any], ident: str) -> dict[str, Any]:
    if not isinstance(ident, str) or not ids.is_safe(ident):
        raise HandoffError("invalid_id", f"{ident!r} is not a work or handoff id",
                           hint="list work with `handoff work list` or handoffs with `handoff list`")
    w: dict[str, Any] | None = state["work"].get(ident)
    if w is None:
        units = state["work"]
        for cand in (units.by_opener(ident) if hasattr(units, "by_opener") else units.values()):
            if cand["opener_id"] == ident:
                opened: dict[str, Any] = cand
                return opened
        raise HandoffError("work_not_found", f"work or handoff {ident!r} not found",
                           hint="list work with `handoff work list` or handoffs with `handoff list`")
    return w


def _work_envelope(w: dict[str, Any], session: dict[str, Any], kind: str, body: dict[str, Any], *, to: str | None = None,
                   reply_to: str | None = None) -> dict[str, Any]:
    peer = session["peer_id"]
    target = w["target_peer_id"]
    if w.get("target_agent") and target == w["target_agent"] and peer != w["opened_by_peer_id"] \
            and session["agent"] == w["target_agent"]:
        target = peer  # the first session of the addressed agent to answer becomes the target
    counterparty = target if peer == w["opened_by_peer_id"] else w["opened_by_peer_id"]
    return {"kind": kind, "channel": w["channel"], "surface": w["surface"], "thread_id": w.get("thread_id"),
            "direct_id": w.get("direct_id"), "from": peer, "session_id": session["session_id"],
            "to": to or counterparty, "work_id": w["work_id"], "trace_id": w.get("trace_id"),
            "reply_to": reply_to or w["opener_id"], "body": body}


def _finish(state: dict[str, Any], drafts: list[dict[str, Any]], given_id: str | None) -> list[dict[str, Any]]:
    if given_id:
        # The first draft carries the id/key itself; later drafts of the same command (accept writes a
        # receipt and a trace) carry "<key>:2", ... so a retry finds and returns every one of them.
        replays = []
        for i, d in enumerate(drafts):
            key = apply_idempotency(d, given_id) if i == 0 else sub_key(d, given_id, i + 1)
            replays.append(replay_or_none(state, d, key, VERB_FIELDS))
        if all(r is not None for r in replays):
            return [{"_replay": r} for r in replays]
        if any(r is not None for r in replays):  # a crash between two files: write only the missing ones
            drafts = [d for d, r in zip(drafts, replays) if r is None]
    staged = state
    for d in drafts:
        check_lifecycle(staged, d)
        d["after"] = parents(staged, d, staged["work"].get(d["work_id"]))
        if len(drafts) > 1:  # later drafts are checked against the state the earlier ones produce
            probe = dict(d, id="msg_probe", ts="9999-12-31T23:59:59.999Z", hlc="9" * 16 + "-00000")
            new, _ = lifecycle.apply(staged["work"].get(d["work_id"]), probe, queries.agent_by_peer(state).get)
            staged = dict(staged, work=ChainMap({d["work_id"]: new}, staged["work"]))
    return drafts


def accept(state: dict[str, Any], session: dict[str, Any], ident: str, *, message: str | None = None, given_id: str | None = None) -> list[dict[str, Any]]:
    w = find_work(state, ident)
    receipt = _work_envelope(w, session, "receipt", {"for_id": w["opener_id"], "status": "accepted"})
    trace = _work_envelope(w, session, "trace", {"state": "working", "message": message or "accepted"})
    return _finish(state, [receipt, trace], given_id)


def reject(state: dict[str, Any], session: dict[str, Any], ident: str, *, reason: str, code: str = "busy",
           given_id: str | None = None) -> list[dict[str, Any]]:
    w = find_work(state, ident)
    if not reason or not reason.strip():
        raise HandoffError("invalid_argument", "a rejection needs --reason", hint='e.g. --reason "busy with migrations"')
    if w["response"] is not None and not is_terminal(w) and session["peer_id"] == w["target_peer_id"]:
        # `reject` is the admission decision; once taken on, the work ends with `fail` or `cancel`
        raise HandoffError("already_responded", f"{w['work_id']} was already {w['response']}",
                           hint=f"end accepted work with `handoff fail {w['work_id']} -m REASON`")
    body = {"for_id": w["opener_id"], "status": "rejected", "reason_code": code, "detail": reason}
    return _finish(state, [_work_envelope(w, session, "receipt", body)], given_id)


def trace(state: dict[str, Any], session: dict[str, Any], ident: str, new_state: str, *, message: str | None = None,
          result: dict[str, Any] | None = None, checkpoint: dict[str, Any] | None = None, reason_code: str | None = None,
          given_id: str | None = None, gate: str | None = None, approval_by: str | None = None,
          policy: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    w = find_work(state, ident)
    if gate is not None or approval_by is not None:
        if not gate or new_state != "working":
            raise HandoffError("invalid_argument", "--gate NAME opens a checkpoint on progress (trace working)",
                               hint='e.g. handoff progress W --gate deploy -m "ready to deploy"')
        check_gate(policy, approval_by)
    body = {"state": new_state, "message": message, "result": result, "checkpoint": checkpoint,
            "reason_code": reason_code, "gate": gate, "approval_by": approval_by}
    return _finish(state, [_work_envelope(w, session, "trace", {k: v for k, v in body.items() if v is not None})],
                   given_id)


def cancel(state: dict[str, Any], session: dict[str, Any], ident: str, *, message: str | None = None, given_id: str | None = None) -> list[dict[str, Any]]:
    w = find_work(state, ident)
    if session["peer_id"] == w["opened_by_peer_id"]:
        body = {"for_id": w["opener_id"], "status": "canceled"}
        if message:
            body["detail"] = message
        return _finish(state, [_work_envelope(w, session, "receipt", body)], given_id)
    return trace(state, session, ident, "canceled", message=message, given_id=given_id)


def reply(state: dict[str, Any], session: dict[str, Any], ident: str, *, text: str, given_id: str | None = None) -> list[dict[str, Any]]:
    w = find_work(state, ident)
    peer = session["peer_id"]
    last_other = None
    for h in w["history"]:
        if h["from"] != peer and not h["refused"]:
            last_other = h["message_id"]
    draft = _work_envelope(w, session, "say", {"text": text, "intent": "reply"}, reply_to=last_other)
    draft["causation_id"] = last_other
    return _finish(state, [draft], given_id)


def request(state: dict[str, Any], session: dict[str, Any], *, workspace_id: str, now_ms: int, to: str, channel: str, description: str,
            context: dict[str, Any] | None, work: str | None, deadline: str | None, thread: str | None,
            direct: bool, given_id: str | None, trace_id: str | None = None, fresh: str | None = None,
            approval_by: str | None = None, policy: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Hivemind's ``request``: a say that opens a work unit, carrying the context bundle.

    ``fresh`` (a new ULID from the shell) names the work unit when neither ``work`` nor ``given_id`` does."""
    ids.check_id("channel", channel)
    if not description or not description.strip():
        raise HandoffError("invalid_argument", "a handoff needs a description (-d TEXT)", hint='-d "what to do next"')
    ids.check_id("peer", to)
    is_peer = any(s["peer_id"] == to for s in state["sessions"].values()) or "." in to
    if to == session["peer_id"]:
        raise HandoffError("invalid_argument", "a handoff to yourself is not a handoff", hint="--to another agent or peer")
    if direct and not is_peer:
        raise HandoffError("invalid_surface", "a direct room needs a peer id, not an agent name",
                           hint="address a peer (agent.session) or drop --direct")
    if given_id and work is None:  # a retry must name the same work unit: derive it from the id
        m = re.fullmatch(r"msg_([0-9a-hjkmnp-tv-z]{26})", given_id)
        work = f"work_{m[1]}" if m else "work_" + re.sub(r"[^A-Za-z0-9_-]", "-", given_id)[:64]
    if work is None and fresh is None:
        raise ValueError("a new work unit needs a fresh ULID from the caller")
    work = work if work is not None else f"work_{fresh}"  # --work '' is refused, not replaced
    ids.check_id("work", work)
    body = {"text": description, "intent": "handoff", "context": context or {},
            "target_kind": "peer" if is_peer else "agent"}
    if approval_by is not None or approvals.required(policy, {"channel": channel, "to": to}):
        check_gate(policy, approval_by)
        if approval_by is not None:
            body["approval_by"] = approval_by
    drafts = send(state, session, workspace_id=workspace_id, now_ms=now_ms, channel=channel, kind="say", body=body,
                  surface="direct" if direct else "thread", thread=thread, to=to, work=work,
                  given_id=given_id, trace_id=trace_id, new_thread_hint=work[5:], fresh=fresh)
    deadline_at = parse_time(deadline, now_ms, "--deadline")
    for d in drafts:
        if not d.get("_replay") and deadline_at:
            d["deadline_at"] = deadline_at
    return drafts


def is_terminal(w: dict[str, Any]) -> bool:
    return w["state"] in TERMINAL_STATES


# ------------------------------------------------------- person gates (core/approvals.py)


def check_gate(policy: dict[str, Any] | None, approval_by: str | None) -> None:
    """Refuse a gate nobody could ever approve, or one naming an approver the config does not list."""
    approvers = (policy or approvals.EMPTY)["approvers"]
    hint = "list person identities under approvals.approvers in .handoffs/config.yaml, or pass --approval-by EMAIL"
    if approval_by is not None and (not approval_by.strip() or (approvers and not approvals.matches(approval_by, approvers))):
        raise HandoffError("not_approver", f"--approval-by {approval_by!r} is not one of approvals.approvers "
                                           f"({', '.join(approvers)})", hint=hint)
    if approval_by is None and not approvers:
        raise HandoffError("no_approvers", "this work needs a person's approval but no approver is configured",
                           hint=hint)


def decide(state: dict[str, Any], ident: str, decision: str, *, by: str | None, reason: str | None,
           policy: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A person's ``approval`` event on the work's open gate (approved lifts it, denied fails the work)."""
    w = find_work(state, ident)
    wid = w["work_id"]
    if decision not in approvals.DECISIONS:
        raise ValueError(decision)
    if decision == "denied" and not (reason or "").strip():
        raise HandoffError("invalid_argument", "a denial needs --reason", hint='e.g. --reason "not this week"')
    if is_terminal(w):
        raise HandoffError("work_closed", f"{wid} is already {w['state']}; there is nothing to decide",
                           hint="terminal states are final")
    gate = approvals.open_gate(w)
    if gate is None:
        last = w.get("gate")
        why = f"; gate {last['name']!r} was already {last['state']} by {last['decided_by']}" if last else ""
        raise HandoffError("no_open_gate", f"{wid} is not waiting for a person's approval{why}",
                           hint="`handoff list --pending-approval` lists the work that is")
    if not by:
        raise HandoffError("not_approver", "no person identity: set `git config user.email` or pass --as",
                           hint=f"approvers of this gate: {', '.join(approvals.who_may(gate, policy)) or 'none'}")
    if not approvals.may_decide(by, gate, policy):
        raise HandoffError("not_approver", f"{by!r} may not decide gate {gate['name']!r} of {wid}",
                           hint=f"approvers of this gate: {', '.join(approvals.who_may(gate, policy)) or 'none'} "
                                "(approvals.approvers in .handoffs/config.yaml; agents never approve)")
    applied = [h["message_id"] for h in w["history"] if not h["refused"]]
    body = {"decision": decision, "for_id": gate["opened_by"], "gate": gate["name"], "by": by, "reason": reason}
    return [{"kind": approvals.KIND, "from": approvals.person_peer(by), "work_id": wid,
             "after": sorted({gate["opened_by"], *applied[-1:]}),
             "body": {k: v for k, v in body.items() if v is not None}}]
