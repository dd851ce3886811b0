"""Work units and handoffs: ``work ...``, ``request``, ``accept``, ``reject``, ``list`` and the lifecycle verbs."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.core import arguments
from handoff.views import render

from .apps import app, work_app
from .common import Cx, IdOpt, SessionOpt, WorkArg, command
from .messages import read_arg

MsgOpt = Annotated[Optional[str], typer.Option("--message", "-m", help="a short note")]


def _work_human(w: dict) -> str:
    where = w.get("thread_id") or w.get("direct_id")
    lines = [f"{w['work_id']}  {render.state_words(w.get('status'), w['state'])}" + ("  OVERDUE" if w.get("overdue") else ""),
             f"  {render.safe(w['opened_by_peer_id'])} -> {render.safe(w['target_peer_id'])} in #{w['channel']}/{where}",
             f"  opened {w['opened_at']}, last activity {w['last_activity_at']}"
             + (f", ended {w['terminal_at']}" if w.get("terminal_at") else "")]
    if w.get("description"):
        lines.append(f"  {render.one_line(w['description'])}")
    if w.get("checkpoint") is not None:
        lines.append(f"  checkpoint: {render.one_line(render._scalar(w['checkpoint']))}")
    if w.get("result") is not None:
        lines.append(f"  result: {render.one_line(render._scalar(w['result']))}")
    gate = w.get("gate")
    if gate:  # a person's checkpoint (core/approvals.py)
        lines.append(f"  gate {render.safe(gate['name'])}: {gate['state']}"
                     + (f" by {render.safe(gate['decided_by'])}" if gate.get("decided_by") else
                        f" since {gate['opened_at']}" + (f", approver {render.safe(gate['approver'])}"
                                                          if gate.get("approver") else "")))
    lease = w.get("lease") or {}
    if lease.get("holder"):
        lines.append(f"  claimed by {render.safe(lease['holder'])} until {lease['lease_until']}")
    for c in lease.get("losers") or []:
        lines.append(f"  ! lease_held: claim by {render.safe(c['from'])} lost ({render.one_line(c['message'])})")
    for d in w.get("diagnostics") or []:
        lines.append(f"  ! {d['reason_code']}: {render.one_line(d['message'])}")
    return "\n".join(lines)


def _lookup(cx: Cx, work: str):
    cx.emit(cx.hf.work(work), _work_human)


@command(work_app, "lookup")
def lookup(cx: Cx, handoff_id: WorkArg):
    """A work unit: container, opener, target, state, timestamps, history and diagnostics.

    \b
    Example:
      handoff work lookup work_migration_check -o json
    """
    _lookup(cx, handoff_id)


@command(work_app, "status")
def status(cx: Cx, handoff_id: WorkArg):
    """Same payload as lookup (AGH offers both names).

    \b
    Example:
      handoff work status work_migration_check -o json
    """
    _lookup(cx, handoff_id)


@command(work_app, "list")
def list_work(cx: Cx,
              state: Annotated[Optional[str], typer.Option("--state", help="submitted, working, needs_input, "
                                                                           "completed, failed, canceled, open")] = None,
              channel: Annotated[Optional[str], typer.Option("--channel", "-c")] = None,
              session: Annotated[Optional[str], typer.Option("--session", "-s", help="only work this session is in")] = None):
    """Work units, oldest first.

    \b
    Example:
      handoff work list --state open -o json
    """
    rows = cx.hf.work_list(state=state, channel=channel, session=session)
    cx.emit({"work": rows}, lambda d: render.table(_paired(d["work"]), ["work_id", "state", "opened_by_peer_id",
                                                                       "target_peer_id", "channel", "last_activity_at"]))


def _paired(rows: list[dict]) -> list[dict]:
    """Rows whose ``state`` column reads as the pair, response · work state."""
    return [{**r, "state": render.state_words(r.get("status"), r["state"])} for r in rows]


# ---------------------------------------------------------------- handoffs


@command(app, "request", writes=True)
def request(cx: Cx,
            to: Annotated[str, typer.Option("--to", "--target-agent", "--to-agent", help="agent name or peer id")],
            channel: Annotated[str, typer.Option("--channel", "-c")],
            description: Annotated[str, typer.Option("--description", "-d", help="what is handed off")],
            context: Annotated[Optional[str], typer.Option("--context", help="JSON context bundle or @file "
                                                           "(files_changed, decisions, next_steps, ...)")] = None,
            work: Annotated[Optional[str], typer.Option("--work", "-w", help="choose the work id (default: see above)")] = None,
            deadline: Annotated[Optional[str], typer.Option("--deadline", help="RFC 3339 time or duration (2h)")] = None,
            thread: Annotated[Optional[str], typer.Option("--thread", "-t", help="open it in this thread")] = None,
            direct: Annotated[bool, typer.Option("--direct", help="open it in the direct room with --to")] = False,
            trace_id: Annotated[Optional[str], typer.Option("--trace-id")] = None,
            approval_by: Annotated[Optional[str], typer.Option("--approval-by", help="a person (git email or name) "
                                                               "who must approve before it may be accepted")] = None,
            session: SessionOpt = None, given_id: IdOpt = None):
    """Open a handoff (Hivemind request): a work unit carrying a context bundle; prints its id.

    The work id is --work W when given; else, with --idempotency-key KEY, work_KEY (characters other
    than letters, digits, _ and - become -; a msg_<ULID> key gives work_<ULID>), so a retry names the
    same unit; else a new work_<ULID>.
    It is the first line printed (handoff_id in -o json).

    --idempotency-key KEY makes the request safe to retry (after a timeout, a crash): running it again
    with the same key writes nothing and replays the first result; the same key with other content is
    refused (id_conflict).

    --approval-by PERSON (or a rule of approvals.require in .handoffs/config.yaml) puts the handoff
    behind a person's gate: the receiver's accept is refused (awaiting_approval) until that person
    runs `handoff approve ID`.

    \b
    Examples:
      handoff request --to agent-b --channel backend -d "Auth refactored, needs API integration" \\
        --context '{"files_changed":["src/auth.ts"],"decisions":["JWT -> session tokens"]}'
      handoff request --to agent-b --channel backend -d "Run the migration" --work work_migration
    """
    ctx = arguments.parse_body(read_arg(context)) if context else {}
    data = cx.me(session).request(to, channel, description, context=ctx, work=work, deadline=deadline,
                                  thread=thread, direct=direct, trace_id=trace_id, id=given_id,
                                  approval_by=approval_by)
    cx.emit(data, lambda d: f"{d['handoff_id']}\n  {render.safe(d['from'])} -> {render.safe(d['to'])} in #{d['channel']}"
            f" ({render.state_words(d['status'], d['state'])})")


@command(app, "list")
def list_handoffs(cx: Cx,
                  to: Annotated[Optional[str], typer.Option("--to", "--target-agent", "--to-agent",
                                                            help="addressed to this agent or peer")] = None,
                  status: Annotated[Optional[str], typer.Option("--status", help="pending, accepted, rejected, "
                                                                                 "canceled or failed")] = None,
                  channel: Annotated[Optional[str], typer.Option("--channel", "-c")] = None,
                  pending_approval: Annotated[bool, typer.Option("--pending-approval", help="only work waiting "
                                                                 "for a person's approval (with its gate)")] = False):
    """Handoffs (work opened with `request`), oldest first.

    \b
    Examples:
      handoff list --to agent-b --status pending -o json
      handoff list --pending-approval
    """
    if pending_approval:
        gated = [r for r in cx.hf.pending_approvals() if (not to or to == r["to"]) and (not channel or channel == r["channel"])
                 and (not status or status == r["status"])]
        cx.emit({"handoffs": gated}, lambda d: render.table(
            [{**r, "gate": r["gate"]["name"], "since": r["gate"]["opened_at"], "approvers": ", ".join(r["approvers"] or [])}
             for r in d["handoffs"]], ["handoff_id", "gate", "since", "approvers", "from", "to", "description"]))
        return
    rows = cx.hf.handoffs(to=to, status=status, channel=channel)
    cx.emit({"handoffs": rows}, lambda d: render.table(_paired(d["handoffs"]), ["handoff_id", "state", "from", "to",
                                                                               "requested_at", "description"]))


def _move(cx: Cx, verb: str, session: str | None, *args, **kwargs) -> None:
    data = getattr(cx.me(session), verb)(*args, **kwargs)
    cx.emit(data, lambda d: (_work_human(d["work"]) if d["work"] else "")
            + ("\n  (already written: idempotent retry)" if d["replayed"] else ""))


@command(app, "accept", writes=True)
def accept(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, session: SessionOpt = None, given_id: IdOpt = None):
    """Accept a handoff: writes `receipt accepted` and `trace working`.

    \b
    Example:
      handoff accept work_01jv8... --session "$S"
    """
    _move(cx, "accept", session, handoff_id, message, id=given_id)


@command(app, "reject", writes=True)
def reject(cx: Cx, handoff_id: WorkArg,
           reason: Annotated[str, typer.Option("--reason", "-r", help="why (shown to the requester)")],
           code: Annotated[str, typer.Option("--code", help="AGH reason code")] = "busy",
           session: SessionOpt = None, given_id: IdOpt = None):
    """Reject a handoff: `receipt rejected` (the work ends as failed; Hivemind status rejected).

    \b
    Example:
      handoff reject work_01jv8... --reason "Currently working on migrations"
    """
    _move(cx, "reject", session, handoff_id, reason, code=code, id=given_id)


def _json_opt(raw: str | None) -> dict | None:
    return arguments.parse_body(read_arg(raw)) if raw is not None else None


ResultOpt = Annotated[Optional[str], typer.Option("--result", help="JSON object or @file")]
CheckpointOpt = Annotated[Optional[str], typer.Option("--checkpoint", help="JSON object or @file: where to resume")]


@command(app, "progress", writes=True)
def progress(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, checkpoint: CheckpointOpt = None,
             gate: Annotated[Optional[str], typer.Option("--gate", help="ask a person to approve this checkpoint: "
                                                         "no further progress until `handoff approve`")] = None,
             approval_by: Annotated[Optional[str], typer.Option("--approval-by", help="with --gate: the person "
                                                                "(default: approvals.approvers)")] = None,
             session: SessionOpt = None, given_id: IdOpt = None):
    """Report progress (`trace working`), optionally with a checkpoint a restarted worker resumes from.

    \b
    Examples:
      handoff progress work_01jv8... -m "3 of 5 files" --checkpoint '{"done":["a.py","b.py","c.py"]}'
      handoff progress work_01jv8... --gate deploy -m "staging is green; deploy to prod?"
    """
    cp = _json_opt(checkpoint)
    _move(cx, "progress", session, handoff_id, message, checkpoint=cp, id=given_id, gate=gate,
          approval_by=approval_by)


@command(app, "need-input", writes=True)
def need_input(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, session: SessionOpt = None, given_id: IdOpt = None):
    """Ask the initiator for input (`trace needs_input`); a reply moves the work back to working.

    \b
    Example:
      handoff need-input work_01jv8... -m "Which database should the migration target?"
    """
    _move(cx, "need_input", session, handoff_id, message, id=given_id)


@command(app, "reply", writes=True)
def reply(cx: Cx, handoff_id: WorkArg, message: Annotated[str, typer.Option("--message", "-m")],
          session: SessionOpt = None, given_id: IdOpt = None):
    """Answer the counterparty of a work unit in its own container.

    \b
    Example:
      handoff reply work_01jv8... -m "Use the staging database"
    """
    _move(cx, "reply", session, handoff_id, message, id=given_id)


@command(app, "complete", writes=True)
def complete(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, result: ResultOpt = None,
             session: SessionOpt = None, given_id: IdOpt = None):
    """Finish the work (`trace completed`), with an optional result.

    \b
    Example:
      handoff complete work_01jv8... -m done --result '{"pr":"#42"}'
    """
    res = _json_opt(result)
    _move(cx, "complete", session, handoff_id, message, result=res, id=given_id)


@command(app, "fail", writes=True)
def fail(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, result: ResultOpt = None,
         session: SessionOpt = None, given_id: IdOpt = None):
    """End the work as failed (`trace failed`).

    \b
    Example:
      handoff fail work_01jv8... -m "tests cannot run without credentials"
    """
    res = _json_opt(result)
    _move(cx, "fail", session, handoff_id, message, result=res, id=given_id)


@command(app, "cancel", writes=True)
def cancel(cx: Cx, handoff_id: WorkArg, message: MsgOpt = None, session: SessionOpt = None, given_id: IdOpt = None):
    """Cancel: the initiator withdraws (`receipt canceled`), the target aborts (`trace canceled`).

    \b
    Example:
      handoff cancel work_01jv8... -m "no longer needed"
    """
    _move(cx, "cancel", session, handoff_id, message, id=given_id)
