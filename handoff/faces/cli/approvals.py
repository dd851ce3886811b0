"""A person's checkpoints: ``approve`` and ``deny`` (no --session: agents never decide; core/approvals.py)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.views import render

from .apps import app
from .common import Cx, WorkArg, command

AsOpt = Annotated[Optional[str], typer.Option("--as", help="the approver identity to decide as (one of "
                                                          "approvals.approvers; default: git config user.email)")]


def _decided(d: dict) -> str:
    w, gate = d["work"], d["work"].get("gate") or {}
    return (f"{w['work_id']}  gate {render.safe(gate.get('name') or '?')} {d['decision']} by {render.safe(d['by'])}"
            f"  ({render.state_words(w.get('status'), w['state'])})")


@command(app, "approve", writes=True)
def approve(cx: Cx, handoff_id: WorkArg,
            reason: Annotated[Optional[str], typer.Option("--reason", "-r", help="a note for the record")] = None,
            as_: AsOpt = None):
    """Approve the work's open gate, as a person: the receiver may then accept (or go on).

    Takes no --session and is refused inside an agent session (HANDOFF_SESSION set) or for an identity
    not listed under approvals.approvers in .handoffs/config.yaml (not_approver, exit 3).

    \b
    Example:
      handoff approve work_deploy_v2 --reason "checked the plan"
    """
    cx.emit(cx.hf.approve(handoff_id, reason=reason, by=as_), _decided)


@command(app, "deny", writes=True)
def deny(cx: Cx, handoff_id: WorkArg,
         reason: Annotated[str, typer.Option("--reason", "-r", help="why (shown to both agents)")],
         as_: AsOpt = None):
    """Deny the work's open gate, as a person: the work fails with reason denied.

    \b
    Example:
      handoff deny work_deploy_v2 --reason "not during the freeze"
    """
    cx.emit(cx.hf.deny(handoff_id, reason=reason, by=as_), _decided)
