"""Durable delivery (AXME, AGH leases): ``watch``, ``wait``, ``claim``, ``heartbeat``, ``release``, ``sweep``."""
from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from handoff.views import render

from .apps import app
from .common import Cx, IdOpt, SessionOpt, WorkArg, command

PollOpt = Annotated[Optional[bool], typer.Option("--poll/--no-poll",
                                                 help="force polling (or forbid it); default: inotify, "
                                                      "polling when inotify cannot be used")]


# ------------------------------------------------------------------ watch


def _note_human(n: dict) -> str:
    work = n.get("work") or {}
    tag = f" [{work.get('work_id')}: {render.state_words(work.get('status'), work.get('state'))}" \
        + (" OVERDUE" if work.get("overdue") else "") + "]" \
        if work else ""
    who = render.safe(n["for_peer"])
    if n["notification"] == "lease_lost":
        return f"{who}: lost the claim on {n['work_id']} to {render.safe(n.get('holder') or '?')}"
    body = n.get("body") or {}
    what = body.get("text") or body.get("message") or body.get("status") or body.get("state") or ""
    head = "REMINDER " + f"{n['reminder']}/{n['reminders_max']} " if n["notification"] == "reminder" else ""
    cp = f" checkpoint={render.one_line(json.dumps(work['checkpoint']), 60)}" if work.get("checkpoint") else ""
    return (f"{who}: {head}{n.get('id')} {n.get('kind')} from {render.safe(n.get('from'))} in #{n.get('channel')}"
            f"{tag}{cp}: {render.one_line(what, 120)}")


@command(app, "watch")
def watch(cx: Cx,
          session: Annotated[Optional[list[str]], typer.Option("--session", "-s", envvar="HANDOFF_SESSION",
                                                               help="session to watch (repeatable)")] = None,
          all_sessions: Annotated[bool, typer.Option("--all-sessions", help="every active session of the repo, "
                                                                            "including ones opened later")] = False,
          exec_: Annotated[Optional[str], typer.Option("--exec", help="run this program per entry (no shell): "
                                                                      "entry JSON on stdin, ids in HANDOFF_* env")] = None,
          once: Annotated[bool, typer.Option("--once", help="deliver what is waiting now, then exit")] = False,
          limit: Annotated[Optional[int], typer.Option("--limit", help="exit after N deliveries")] = None,
          consumer: Annotated[str, typer.Option("--consumer", help="cursor name: independent consumers of "
                                                                   "one session each get every entry")] = "default",
          remind_every: Annotated[str, typer.Option("--remind-every", help="re-notify the target of overdue work "
                                                                           "this often (0 = never)")] = "10m",
          remind_max: Annotated[int, typer.Option("--remind-max", help="at most this many reminders per unit")] = 3,
          exec_timeout: Annotated[float, typer.Option("--exec-timeout", help="seconds before a hook is killed")] = 300.0,
          exec_retries: Annotated[int, typer.Option("--exec-retries", help="attempts before an entry is "
                                                                           "dead-lettered")] = 5,
          reset: Annotated[bool, typer.Option("--reset", help="forget this consumer's cursor first "
                                                              "(everything waiting is delivered again)")] = False,
          poll: PollOpt = None):
    """Stream each new inbox entry of one or more sessions as it lands (at-least-once, with a local cursor).

    Entries written by other processes or brought by git pull/merge/checkout/rebase/sync are
    reported once; after a restart, what arrived meanwhile is reported and nothing is repeated.
    With --exec CMD, CMD runs per entry without a shell, the entry as JSON on stdin and
    HANDOFF_MESSAGE_ID, HANDOFF_KIND, HANDOFF_FROM, HANDOFF_WORK_ID, HANDOFF_SESSION... in its environment.

    \b
    Example:
      handoff watch --session "$S" -o jsonl --exec 'python3 on_entry.py'
    """
    def emit(n: dict) -> None:
        if cx.output == "jsonl":
            sys.stdout.write(json.dumps(n, ensure_ascii=False, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        elif cx.output == "yaml":
            sys.stdout.write("---\n")
            cx.emit(n)
        else:
            cx.emit(n, _note_human)

    cx.hf.watch(emit, cx.note, reset=reset, sessions=session, all_sessions=all_sessions, exec_=exec_, once=once,
                limit=limit, consumer=consumer, remind_every=remind_every, remind_max=remind_max,
                exec_timeout=exec_timeout, exec_retries=exec_retries, poll=poll)


# ------------------------------------------------------------------- wait


@command(app, "wait")
def wait(cx: Cx, handoff_id: WorkArg,
         timeout: Annotated[Optional[float], typer.Option("--timeout", help="give up after S seconds (exit 124)")] = None,
         until_input: Annotated[bool, typer.Option("--until-input", help="also return when the work needs "
                                                                         "input (exit 8) or waits for a person's "
                                                                         "approval (exit 9)")] = False,
         until_approved: Annotated[bool, typer.Option("--until-approved", help="return when the work no longer "
                                                                               "waits for a person (exit 0; a "
                                                                               "denial fails it: exit 6)")] = False,
         poll: PollOpt = None):
    """Block until the work unit is terminal, then print it (AXME wait_for). No busy polling.

    Exit codes: 0 completed, 6 failed (incl. rejected, expired), 7 canceled,
    8 needs_input and 9 awaiting_approval (a person's gate: `handoff approve`) with
    --until-input, 124 timeout, 4 unknown work.  A worker that asked for a checkpoint
    (progress --gate) waits --until-approved: 0 approved, 6 denied.

    \b
    Examples:
      handoff wait work_01jv8... --timeout 600 -o json
      handoff wait work_01jv8... --until-approved --timeout 3600
    """
    from handoff.app.waiting import WAIT_EXIT
    payload = cx.hf.wait(handoff_id, timeout, until_input=until_input, poll=poll, until_approved=until_approved)
    cx.emit(payload, lambda d: f"{d['work_id']}  {d['wait_result']}  ({render.state_words(d.get('status'), d['state'])})"
            + (f"\n  result: {render.one_line(json.dumps(d['result']))}" if d.get("result") is not None else "")
            + (f"\n  {render.one_line(d['last_message'])}" if d.get("last_message") else ""))
    code = WAIT_EXIT[payload["wait_result"]]
    if code:
        raise typer.Exit(code)


# ----------------------------------------------------------------- leases


def _lease_human(d: dict) -> str:
    lease = d["lease"]
    if lease["holder"]:
        line = f"{d['work_id']}: held by {render.safe(lease['holder'])} until {lease['lease_until']}"
    elif lease.get("expired"):
        line = f"{d['work_id']}: free (the lease of {render.safe(lease['last_holder'])} lapsed at {lease['lease_until']})"
    else:
        line = f"{d['work_id']}: free"
    for c in lease["losers"]:
        line += f"\n  ! claim {c['event_id']} by {render.safe(c['from'])} lost: {render.one_line(c['message'])}"
    if d.get("replayed"):
        line += "\n  (already written: idempotent retry)"
    return line


@command(app, "claim", writes=True)
def claim(cx: Cx, handoff_id: WorkArg,
          lease: Annotated[Optional[str], typer.Option("--lease", help="how long (90s, 10m, 2h); default 10m")] = None,
          session: SessionOpt = None, given_id: IdOpt = None):
    """Claim a work unit for a while: one holder at a time; an expired lease can be claimed by another session.

    Races on two branches resolve to the first claim in event order; the loser is flagged
    (``handoff work status``) and told by its watcher (a ``lease_lost`` notification).

    \b
    Example:
      handoff claim work_01jv8... --lease 10m --session "$S"
    """
    cx.emit(cx.me(session).claim(handoff_id, lease, id=given_id), _lease_human)


@command(app, "heartbeat", writes=True)
def heartbeat(cx: Cx, handoff_id: WorkArg,
              lease: Annotated[Optional[str], typer.Option("--lease", help="extend to now + this; default 10m")] = None,
              session: SessionOpt = None, given_id: IdOpt = None):
    """Extend your live lease on a work unit (refused if you do not hold it or it lapsed).

    \b
    Example:
      handoff heartbeat work_01jv8... --session "$S"
    """
    cx.emit(cx.me(session).heartbeat(handoff_id, lease, id=given_id), _lease_human)


@command(app, "release", writes=True)
def release(cx: Cx, handoff_id: WorkArg, session: SessionOpt = None, given_id: IdOpt = None):
    """Give up your lease on a work unit so another session may claim it.

    \b
    Example:
      handoff release work_01jv8... --session "$S"
    """
    cx.emit(cx.me(session).release(handoff_id, id=given_id), _lease_human)


# ------------------------------------------------------------------ sweep


@command(app, "sweep", writes=True)
def sweep(cx: Cx, session: SessionOpt = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be swept; write nothing")] = False,
          given_id: IdOpt = None):
    """Turn passed deadlines into outcomes: `trace failed` with reason_code expired, for the
    overdue work this session takes part in (initiator or target).

    \b
    Example:
      handoff sweep --session "$S" --dry-run
    """
    cx.emit(cx.me(session).sweep(dry_run=dry_run, id=given_id), _sweep_human)


def _sweep_human(d: dict) -> str:
    if not d["swept"]:
        return "nothing overdue"
    verb = "would expire" if d["dry_run"] else "expired"
    return "\n".join(f"{verb} {w['work_id']} (deadline {w['deadline_at']}) -> {w['state']}" for w in d["swept"])
