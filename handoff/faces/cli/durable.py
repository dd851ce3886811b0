"""Durable delivery (AXME, AGH leases): ``watch``, ``wait``, ``claim``, ``heartbeat``, ``release``, ``sweep``."""
from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from handoff.core import arguments, deadlines, leases, session_ops, work_ops
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.store.local import own_sessions
from handoff.views import payloads as views
from handoff.views import render

from .apps import app
from .common import Cx, IdOpt, SessionOpt, command
from .messages import write_meta

IdArg = Annotated[str, typer.Argument(help="handoff / work id")]
MAX_WAIT_S = 30 * 86400.0  # the longest --timeout or --exec-timeout (leave --timeout out to wait for ever)
PollOpt = Annotated[Optional[bool], typer.Option("--poll/--no-poll",
                                                 help="force polling (or forbid it); default: inotify, "
                                                      "polling when inotify cannot be used")]


# ------------------------------------------------------------------ watch


def _note_human(n: dict) -> str:
    work = n.get("work") or {}
    tag = f" [{work.get('work_id')}: {work.get('state')}" + (" OVERDUE" if work.get("overdue") else "") + "]" \
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

    Example: handoff watch --session "$S" -o jsonl --exec 'python3 on_entry.py'
    """
    import re

    from handoff.app.watch import Options, Watch, parse_exec
    from handoff.store import local
    if not session and not all_sessions:
        raise HandoffError("no_session", "no session to watch",
                           hint="pass --session ID (repeatable), --all-sessions, or set HANDOFF_SESSION")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", consumer):
        raise HandoffError("invalid_argument", f"--consumer {consumer!r} is not a valid name",
                           hint="letters, digits, '.', '_' or '-'")
    if not exec_timeout <= MAX_WAIT_S:  # (nan, inf, too long; 0 or less: no limit, as before)
        raise HandoffError("invalid_argument", f"--exec-timeout {exec_timeout} is not a number of seconds up to "
                           f"{MAX_WAIT_S:.0f} (30 days)", hint="seconds, e.g. --exec-timeout 300")
    every = 0 if remind_every.strip() in ("0", "0s", "off", "never") else arguments.parse_duration(remind_every)
    opts = Options(sessions=list(session or []), all_sessions=all_sessions, consumer=consumer, poll=poll,
                   once=once, limit=limit, remind_every_ms=every, remind_max=max(0, remind_max),
                   exec_argv=parse_exec(exec_), exec_timeout=exec_timeout if exec_timeout > 0 else None,
                   exec_retries=max(1, exec_retries))
    ws = cx.ws
    if reset:
        st = ws.state()
        for s in ([x for x in st["sessions"].values()] if all_sessions else
                  [session_ops.session_for(st, i, write=False) for i in opts.sessions]):
            local.reset_cursor(ws, s["session_id"], consumer)

    def emit(n: dict) -> None:
        if cx.output == "jsonl":
            sys.stdout.write(json.dumps(n, ensure_ascii=False, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        elif cx.output == "yaml":
            sys.stdout.write("---\n")
            cx.emit(n)
        else:
            cx.emit(n, _note_human)

    Watch(ws, opts, emit, cx.note).run()


# ------------------------------------------------------------------- wait


@command(app, "wait")
def wait(cx: Cx, handoff_id: IdArg,
         timeout: Annotated[Optional[float], typer.Option("--timeout", help="give up after S seconds (exit 124)")] = None,
         until_input: Annotated[bool, typer.Option("--until-input", help="also return when the work needs "
                                                                         "input (exit 8)")] = False,
         poll: PollOpt = None):
    """Block until the work unit is terminal, then print it (AXME wait_for). No busy polling.

    Exit codes: 0 completed, 6 failed (incl. rejected, expired), 7 canceled,
    8 needs_input (with --until-input), 124 timeout, 4 unknown work.

    Example: handoff wait work_01jv8... --timeout 600 -o json
    """
    from handoff.app.watch import WAIT_EXIT, wait_for
    if timeout is not None and not 0 <= timeout <= MAX_WAIT_S:  # (also refuses nan and inf)
        raise HandoffError("invalid_argument", f"--timeout {timeout} is not a number of seconds from 0 to "
                           f"{MAX_WAIT_S:.0f} (30 days)",
                           hint="seconds, e.g. --timeout 600; leave it out to wait as long as it takes")
    payload, outcome = wait_for(cx.ws, handoff_id, timeout, until_input, poll)
    payload["wait_result"] = outcome
    cx.emit(payload, lambda d: f"{d['work_id']}  {d['wait_result'].upper()}  (state {d['state']})"
            + (f"\n  result: {render.one_line(json.dumps(d['result']))}" if d.get("result") is not None else "")
            + (f"\n  {render.one_line(d['last_message'])}" if d.get("last_message") else ""))
    code = WAIT_EXIT[outcome]
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


def _lease_cmd(cx: Cx, kind: str, ident: str, session: str | None, lease: str | None, given_id: str | None) -> None:
    ws = cx.ws
    lease_ms = leases.parse_lease(lease) if kind != "release" else None
    now = clock.now_ms()

    def build(state):
        s = session_ops.session_for(state, session, own=own_sessions(ws, session))
        w = work_ops.find_work(state, ident)
        return [leases.draft(state, s, w, kind, now_ms=now, lease_ms=lease_ms, given_id=given_id)]

    result = ws.write(build, commit=cx.commit)
    state = ws.state()
    w = state["work"][result.events[0]["work_id"]]
    data = {"work_id": w["work_id"], "lease": leases.view(state, w, clock.now_ms()),
            "event": result.events[0], **write_meta(result)}
    cx.emit(data, _lease_human)


@command(app, "claim", writes=True)
def claim(cx: Cx, handoff_id: IdArg,
          lease: Annotated[Optional[str], typer.Option("--lease", help="how long (90s, 10m, 2h); default 10m")] = None,
          session: SessionOpt = None, given_id: IdOpt = None):
    """Claim a work unit for a while: one holder at a time; an expired lease can be claimed by another session.

    Races on two branches resolve to the first claim in event order; the loser is flagged
    (``handoff work status``) and told by its watcher (a ``lease_lost`` notification).

    Example: handoff claim work_01jv8... --lease 10m --session "$S"
    """
    _lease_cmd(cx, "claim", handoff_id, session, lease, given_id)


@command(app, "heartbeat", writes=True)
def heartbeat(cx: Cx, handoff_id: IdArg,
              lease: Annotated[Optional[str], typer.Option("--lease", help="extend to now + this; default 10m")] = None,
              session: SessionOpt = None, given_id: IdOpt = None):
    """Extend your live lease on a work unit (refused if you do not hold it or it lapsed).

    Example: handoff heartbeat work_01jv8... --session "$S"
    """
    _lease_cmd(cx, "heartbeat", handoff_id, session, lease, given_id)


@command(app, "release", writes=True)
def release(cx: Cx, handoff_id: IdArg, session: SessionOpt = None, given_id: IdOpt = None):
    """Give up your lease on a work unit so another session may claim it.

    Example: handoff release work_01jv8... --session "$S"
    """
    _lease_cmd(cx, "release", handoff_id, session, None, given_id)


# ------------------------------------------------------------------ sweep


@command(app, "sweep", writes=True)
def sweep(cx: Cx, session: SessionOpt = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be swept; write nothing")] = False,
          given_id: IdOpt = None):
    """Turn passed deadlines into outcomes: `trace failed` with reason_code expired, for the
    overdue work this session takes part in (initiator or target).

    Example: handoff sweep --session "$S" --dry-run
    """
    ws = cx.ws
    now = clock.now_ms()
    if dry_run:
        state = ws.state()
        s = session_ops.session_for(state, session, write=False)
        rows = [views.work_payload(w, now, history=False) for w in deadlines.overdue_work(state, now, s["peer_id"])]
        return cx.emit({"dry_run": True, "swept": rows}, _sweep_human)
    swept: list[str] = []

    class _Nothing(Exception):
        pass

    def build(state):
        s = session_ops.session_for(state, session, own=own_sessions(ws, session))
        drafts = deadlines.sweep(state, s, now, given_id)
        if not drafts:
            raise _Nothing()
        swept[:] = [d.get("work_id") or d["_replay"]["work_id"] for d in drafts]
        return drafts

    try:
        result = ws.write(build, commit=cx.commit)
    except _Nothing:
        return cx.emit({"dry_run": False, "swept": []}, _sweep_human)
    state = ws.state()
    rows = [views.work_payload(state["work"][wid], now, history=False) for wid in swept]
    cx.emit({"dry_run": False, "swept": rows, **write_meta(result)}, _sweep_human)


def _sweep_human(d: dict) -> str:
    if not d["swept"]:
        return "nothing overdue"
    verb = "would expire" if d["dry_run"] else "expired"
    return "\n".join(f"{verb} {w['work_id']} (deadline {w['deadline_at']}) -> {w['state']}" for w in d["swept"])
