"""A person's checkpoints on work (``core/approvals.py``): ``approve``, ``deny`` and what waits for one.

``approve``/``deny`` take no session: the decision is a person's, written as an ``approval`` event whose
``by`` is ``--as`` or the commit author's email, and refused when that identity is not an approver or when
the process runs as an agent session (``HANDOFF_SESSION`` set).
"""
from __future__ import annotations

import os

from handoff.app.meta import write_meta
from handoff.app.workspace import Workspace
from handoff.core import approvals, work_ops
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.views import payloads as views


def policy(ws: Workspace) -> dict:
    return approvals.policy_of(ws.config)


def person(ws: Workspace, as_identity: str | None) -> str | None:
    """Who decides: ``--as``, else the email git will author the commit with (``git var GIT_AUTHOR_IDENT``:
    ``user.email`` or ``GIT_AUTHOR_EMAIL``), the one ``verify`` compares."""
    if os.environ.get("HANDOFF_SESSION"):
        raise HandoffError("not_approver", "an agent session cannot approve or deny (HANDOFF_SESSION is set)",
                           hint="a person runs `handoff approve` in a shell without HANDOFF_SESSION")
    if as_identity:
        return as_identity
    from handoff.git import cmd as gitcmd
    ident = gitcmd.run(ws.paths.worktree, "var", "GIT_AUTHOR_IDENT", check=False).stdout.decode("utf-8", "replace")
    return ident[ident.find("<") + 1:ident.find(">")].strip() or None if "<" in ident else None


def decide(ws: Workspace, work_id: str, decision: str, *, reason: str | None = None, as_identity: str | None = None,
           commit: bool | None = None) -> dict:
    """Write a person's decision on the work's open gate; the work unit after it."""
    by = person(ws, as_identity)
    pol = policy(ws)
    result = ws.write(lambda st: work_ops.decide(st, work_id, decision, by=by, reason=reason, policy=pol),
                      commit=commit)
    ev = result.events[0]
    w = ws.state()["work"][ev["work_id"]]
    return {"work": views.work_payload(w, clock.now_ms(), history=False), "decision": decision, "by": by,
            "event": ev, **write_meta(result)}


def for_session(st: dict, s: dict) -> list[dict]:
    """The work session ``s`` is in (initiator or target) that waits for a person: id, role, gate."""
    units = st["work"]
    units = units.open_units_holding(approvals.AWAITING) if hasattr(units, "open_units_holding") else units.values()
    out = []
    for w in units:
        gate = approvals.open_gate(w)
        to_agent = w.get("target_agent") and w["target_peer_id"] == w["target_agent"] == s["agent"]
        role = "target" if w["target_peer_id"] == s["peer_id"] or to_agent else \
            "initiator" if w["opened_by_peer_id"] == s["peer_id"] else None
        if gate is not None and role is not None:
            out.append({"work_id": w["work_id"], "role": role, "gate": gate["name"], "approver": gate.get("approver"),
                        "since": gate["opened_at"]})
    return sorted(out, key=lambda r: (r["since"], r["work_id"]))


def pending(st: dict, now_ms: int, pol: dict | None = None) -> list[dict]:
    """Work waiting for a person, oldest gate first: each unit's handoff view, its gate and who may decide."""
    rows = []
    for w in st["work"].values():
        gate = approvals.open_gate(w)
        if gate is not None:
            rows.append({**views.handoff_view(w, now_ms), "gate": gate,
                         "approvers": approvals.who_may(gate, pol) if pol is not None else None})
    return sorted(rows, key=lambda r: (r["gate"]["opened_at"], r["handoff_id"]))
