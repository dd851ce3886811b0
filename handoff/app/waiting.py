"""Blocking calls: ``wait`` for one work unit, and the checks and set-up of ``watch``.

``follow`` is the Python API's ``Session.watch`` (a generator); ``watch_options`` turns the
command line's ``watch`` arguments into ``watch.Options`` (refusing bad ones) for the
long-running ``watch.Watch``.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from handoff.app.watch import Options, install_memo, make_watcher
from handoff.app.workspace import Workspace
from handoff.core import arguments, session_ops, work_ops
from handoff.core.model import TERMINAL_STATES
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.views import payloads as views

MAX_WAIT_S = 30 * 86400.0  # the longest --timeout or --exec-timeout (leave --timeout out to wait for ever)


# awaiting_approval (9): with until_input, the unit waits at a person's gate (core/approvals.py);
# approved (0): with until_approved, the unit is active and no (longer) waits at one
WAIT_EXIT = {"completed": 0, "failed": 6, "canceled": 7, "needs_input": 8, "awaiting_approval": 9, "approved": 0,
             "timeout": 124}


def wait_for(ws, ident: str, timeout: float | None, until_input: bool, poll: bool | None = None, *,
             until_approved: bool = False) -> tuple[dict, str]:
    """Block until the unit is terminal (or, with ``until_input``, needs input or waits at a person's gate;
    with ``until_approved``, no longer waits at one: a worker's ``progress --gate`` then this) or
    ``timeout`` passes.

    Returns (work payload, outcome) where outcome is a key of WAIT_EXIT.
    Unknown work raises ``work_not_found`` at once.  Blocking is on file
    events (``watchfs``), with a slow reconcile tick, never a busy loop.
    """
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    install_memo(ws)

    last: list[dict] = []

    def check() -> tuple[dict, str | None]:
        state = ws.state(refresh=True)
        try:
            w = work_ops.find_work(state, ident)
        except HandoffError:
            if not last:
                raise
            return last[0], None  # gone from this checkout for now (a branch switch): keep waiting
        outcome = w["state"] if w["state"] in TERMINAL_STATES else \
            "needs_input" if until_input and w["state"] == "needs_input" else \
            "awaiting_approval" if until_input and (w.get("gate") or {}).get("state") == "awaiting_approval" else \
            "approved" if until_approved and (w.get("gate") or {}).get("state") != "awaiting_approval" else None
        payload = views.work_payload(w, clock.now_ms(), history=False)
        last[:] = [payload]
        return payload, outcome

    payload, outcome = check()
    if outcome is not None:
        return payload, outcome
    if deadline is not None and time.monotonic() >= deadline:
        return payload, "timeout"
    fw = make_watcher(ws, poll, rescan_interval=10.0)
    try:
        payload, outcome = check()  # anything that landed while the watch was being set up
        while outcome is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return payload, "timeout"
            if fw.wait(left):
                payload, outcome = check()
        return payload, outcome
    finally:
        fw.stop()


def check_timeout(timeout: float | None) -> None:
    """``wait``'s ``timeout``: None (for ever) or 0 to 30 days of seconds."""
    if timeout is not None and not 0 <= timeout <= MAX_WAIT_S:  # (also refuses nan and inf)
        raise HandoffError("invalid_argument", f"--timeout {timeout} is not a number of seconds from 0 to "
                           f"{MAX_WAIT_S:.0f} (30 days)",
                           hint="seconds, e.g. --timeout 600; leave it out to wait as long as it takes")


def wait(ws: Workspace, ident: str, timeout: float | None = None, *, until_input: bool = False,
         poll: bool | None = None, until_approved: bool = False) -> dict:
    """``handoff wait``: the work payload with ``wait_result`` (a key of WAIT_EXIT)."""
    check_timeout(timeout)
    if until_input and until_approved:
        raise HandoffError("invalid_argument", "--until-input and --until-approved wait for different things",
                           hint="a requester waits --until-input; a worker at its own gate waits --until-approved")
    payload, outcome = wait_for(ws, ident, timeout, until_input, poll, until_approved=until_approved)
    payload["wait_result"] = outcome
    return payload


# ------------------------------------------------------------------ watch


def watch_options(*, sessions: list[str] | None = None, all_sessions: bool = False, exec_: str | None = None,
                  once: bool = False, limit: int | None = None, consumer: str = "default",
                  remind_every: str = "10m", remind_max: int = 3, exec_timeout: float = 300.0,
                  exec_retries: int = 5, poll: bool | None = None) -> Options:
    """Check ``handoff watch``'s arguments; the watcher's options."""
    from handoff.app.hookexec import parse_exec
    if not sessions and not all_sessions:
        raise HandoffError("no_session", "no session to watch",
                           hint="pass --session ID (repeatable), --all-sessions, or set HANDOFF_SESSION")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", consumer):
        raise HandoffError("invalid_argument", f"--consumer {consumer!r} is not a valid name",
                           hint="letters, digits, '.', '_' or '-'")
    if not exec_timeout <= MAX_WAIT_S:  # (nan, inf, too long; 0 or less: no limit, as before)
        raise HandoffError("invalid_argument", f"--exec-timeout {exec_timeout} is not a number of seconds up to "
                           f"{MAX_WAIT_S:.0f} (30 days)", hint="seconds, e.g. --exec-timeout 300")
    every = 0 if remind_every.strip() in ("0", "0s", "off", "never") else arguments.parse_duration(remind_every)
    return Options(sessions=list(sessions or []), all_sessions=all_sessions, consumer=consumer, poll=poll,
                   once=once, limit=limit, remind_every_ms=every, remind_max=max(0, remind_max),
                   exec_argv=parse_exec(exec_), exec_timeout=exec_timeout if exec_timeout > 0 else None,
                   exec_retries=max(1, exec_retries))


def reset_cursors(ws: Workspace, opts: Options) -> None:
    """``watch --reset``: forget the consumer's cursor of every watched session."""
    from handoff.store import local
    st = ws.state()
    for s in (list(st["sessions"].values()) if opts.all_sessions else
              [session_ops.session_for(st, i, write=False) for i in opts.sessions]):
        local.reset_cursor(ws, s["session_id"], opts.consumer)


def watch(ws: Workspace, opts: Options, emit: Callable[[dict], None], note: Callable[[str], None], *,
          reset: bool = False) -> int:
    """``handoff watch``: forget the cursors with ``reset``, then serve: ``emit`` gets each notification,
    ``note`` each remark for people.  Returns when done."""
    from handoff.app.watch import Watch
    if reset:
        reset_cursors(ws, opts)
    return Watch(ws, opts, emit, note).run()


def follow(ws: Workspace, sid: str, *, consumer: str | None = None, timeout: float | None = None,
           remind_every: float = 0, remind_max: int = 0) -> Iterator[dict]:
    """``Session.watch``: each new inbox entry (or reminder, or lost claim) of session ``sid``, once."""
    from handoff import index
    from handoff.core import delivery
    from handoff.store import local
    seen = local.read_cursor(ws, sid, consumer) if consumer else set()
    install_memo(ws)
    with local.registered_watcher(ws, [sid]):
        fw = make_watcher(ws, None)
        try:
            quiet_since = time.monotonic()
            while True:
                st = ws.state(refresh=True)
                s = session_ops.session_for(st, sid, write=False)
                every = int(remind_every * 1000)
                # (as the watcher: only this session's messages, only units with a deadline for it)
                notes = delivery.due(index.for_inbox(st, s), s, acked=local.read_acks(ws, sid),
                                     delivered=seen, now_ms=clock.now_ms(),
                                     remind_every_ms=every, remind_max=remind_max,
                                     units=index.timer_units(st, [s]) if every > 0 and remind_max > 0 else None)
                for n in notes:
                    yield n
                    seen.add(n["key"])
                    if consumer:
                        local.record_cursor(ws, sid, consumer, [n["key"]])
                if notes:
                    quiet_since = time.monotonic()
                left = None if timeout is None else timeout - (time.monotonic() - quiet_since)
                if left is not None and left <= 0:
                    return
                fw.wait(left)
        finally:
            fw.stop()
