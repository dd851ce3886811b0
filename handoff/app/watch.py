"""The watcher: the shell around ``watchfs`` (signals) and ``delivery`` (what is due).

File-system events are only hints.  On every hint (debounced by
``watchfs``), at start, and when a timer falls due (reminders, hook
retries), the watcher re-reads state and asks ``delivery.due`` what each
watched session has not been delivered yet.  So a burst of 1,000 files from
a ``git pull``, a ``.handoffs/`` deleted and recreated by a checkout, an
inotify overflow or a missed event all end the same way: one rescan, and
everything not yet in the cursor is delivered.

Delivery is at-least-once: the cursor (``local.record_cursor``) is appended
only after the output line was flushed and the ``--exec`` hook exited 0.
A hook that fails is retried with backoff (1, 2, 4, 8, 16, 30, 60 s) up to
``exec_retries`` attempts per watcher run; then the entry is written to a
dead-letter file, reported on stderr, and counted as delivered for this
consumer (it stays in ``handoff inbox`` until answered).  Later entries are
not held back by a failing one, so there is no FIFO promise across retries.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from handoff.app.hookexec import run_exec
from handoff.core import deadlines, delivery, queries, session_ops
from handoff.store import clock, local

COMPACT_LINES = 20000
RECORD_BATCH = 200


class Stop(Exception):
    """Raised from the SIGTERM handler to leave the wait loop cleanly."""


def make_watcher(ws, poll: bool | None, rescan_interval: float = 30.0):
    from handoff.app.watchfs import FileWatcher
    fw = FileWatcher(ws.paths.worktree, ws.paths.git_dir, poll=poll, rescan_interval=rescan_interval)
    fw.start()
    return fw


# ----------------------------------------------------------- record memo


class MemoRecords:
    """Decoded records kept in memory across rescans of a long-running watcher.

    Event files are immutable once published, so (path, inode, size, mtime) identifies the
    content; only new or changed files are read and parsed on each rescan.  Records that
    failed to decode are never kept (git writes files non-atomically: read them again).
    Installed as ``ws.records`` only while there is no persistent index (``index.state``);
    with one, state is cached across processes and this memo is not needed.
    """

    def __init__(self, ws) -> None:
        self.ws = ws
        self.memo: dict[tuple, dict] = {}

    def __call__(self) -> list[dict]:
        from handoff.core import reducer
        from handoff.store import files as store
        out: list[dict] = []
        fresh: dict[tuple, dict] = {}
        for rel, st, problem in store.list_event_files(self.ws.root):
            if problem:
                out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"{problem}: not read"}})
                continue
            assert st is not None  # list_event_files gives a stat for every file it reports no problem with
            key = (rel, st.st_ino, st.st_size, st.st_mtime_ns)
            rec = self.memo.get(key)
            if rec is None:
                try:
                    rec = reducer.decode(rel, store.read_event_file(self.ws.root, rel, st))
                except OSError as exc:
                    rec = {"path": rel, "error": {"reason_code": "malformed", "message": f"unreadable: {exc}"}}
            if "error" not in rec:
                fresh[key] = rec
            out.append(rec)
        self.memo = fresh
        try:  # events on remote-tracking refs (``handoff sync``), as ``index.load_records`` adds them
            from handoff.git.remotes import remote_records
        except ImportError:
            return out
        return out + remote_records(self.ws, {r["path"] for r in out})


def install_memo(ws) -> None:
    """Use ``MemoRecords`` while the workspace reads state through ``records()`` (no persistent index)."""
    from handoff import index
    if not hasattr(index, "state"):
        ws.records = MemoRecords(ws)


# ------------------------------------------------------------------ watch


@dataclass
class Options:
    sessions: list[str] = field(default_factory=list)
    all_sessions: bool = False
    consumer: str = "default"
    poll: bool | None = None
    once: bool = False
    limit: int | None = None
    remind_every_ms: int = 0
    remind_max: int = 0
    exec_argv: list[str] | None = None
    exec_timeout: float | None = 300.0
    exec_retries: int = 5
    rescan_interval: float = 30.0


class Watch:
    """One observer serving any number of sessions of one repository."""

    def __init__(self, ws, opts: Options, emit: Callable[[dict], None], note: Callable[[str], None]):
        self.ws, self.opts, self.emit, self.note = ws, opts, emit, note
        self.delivered: dict[str, set[str]] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.retry_at: dict[tuple[str, str], float] = {}
        self.count = 0
        self.mode: str | None = None
        self._unrecorded: dict[str, list[str]] = {}
        self._missing: set[str] = set()
        install_memo(ws)

    # sessions -----------------------------------------------------------
    def sessions(self, state: dict, strict: bool = False) -> list[dict]:
        """The watched sessions in ``state``.  Unknown ones are fatal at start (``strict``); later they
        are skipped, because a checkout of a branch without them must not stop the watcher."""
        if self.opts.all_sessions:
            return [s for s in sorted(state["sessions"].values(), key=lambda s: s["session_id"])
                    if s["state"] == "active"]
        out = []
        for ident in self.opts.sessions:
            s = queries.find_session(state, ident)
            if s is None:
                if strict:
                    session_ops.session_for(state, ident, write=False)  # raises session_not_found
                if ident not in self._missing:
                    self._missing.add(ident)
                    self.note(f"handoff watch: session {ident} is not in this checkout; waiting for it")
                continue
            self._missing.discard(ident)
            out.append(s)
        return out

    def _cursor(self, sid: str) -> set[str]:
        if sid not in self.delivered:
            self.delivered[sid] = local.read_cursor(self.ws, sid, self.opts.consumer)
        return self.delivered[sid]

    # one pass -------------------------------------------------------------
    def scan(self) -> float | None:
        """Deliver everything due; return seconds until the next timer, or None."""
        try:
            return self._scan()
        finally:
            self.flush()

    def _scan(self) -> float | None:
        state = self.ws.state(refresh=True)
        now = clock.now_ms()
        sessions = self.sessions(state)
        next_at = None
        from handoff.index import for_inbox, timer_units
        reminding = self.opts.remind_every_ms > 0 and self.opts.remind_max > 0
        units = timer_units(state, sessions) if reminding else None  # (open units with a deadline for them)
        for s in sessions:
            sid = s["session_id"]
            seen = self._cursor(sid)
            acked = local.read_acks(self.ws, sid)
            mine = for_inbox(state, s)  # (only the messages this session's inbox can hold, from the index)
            notes = delivery.due(mine, s, acked=acked, delivered=seen, now_ms=now,
                                 remind_every_ms=self.opts.remind_every_ms, remind_max=self.opts.remind_max,
                                 units=units)
            for n in notes:
                wait = self._deliver(s, n)
                if wait is not None:
                    next_at = wait if next_at is None else min(next_at, wait)
                if self.opts.limit is not None and self.count >= self.opts.limit:
                    raise Stop()
            if len(seen) > COMPACT_LINES:
                keep = seen & (delivery.live_keys(mine, s, now) | {k for k in seen if ":" in k})
                local.compact_cursor(self.ws, sid, self.opts.consumer, keep)
                self.delivered[sid] = keep
        timers = [] if next_at is None else [next_at - time.monotonic()]
        nxt = deadlines.next_reminder_ms(state, sessions, now, self.opts.remind_every_ms, self.opts.remind_max,
                                         units)
        if nxt is not None:
            timers.append((nxt - now) / 1000)
        return max(0.0, min(timers)) if timers else None

    def _deliver(self, s: dict, n: dict) -> float | None:
        """Deliver one notification; return the monotonic time of a pending retry, if any."""
        sid, key = s["session_id"], n["key"]
        slot = (sid, key)
        if slot in self.retry_at and time.monotonic() < self.retry_at[slot]:
            return self.retry_at[slot]
        if self.opts.exec_argv:
            fails = self.failures.get(slot, 0)
            ok, why = run_exec(self.opts.exec_argv, dict(n, _attempt=fails + 1), str(self.ws.paths.worktree),
                               self.opts.exec_timeout)
            if not ok:
                fails += 1
                self.failures[slot] = fails
                if fails < self.opts.exec_retries:
                    delay = delivery.retry_delay_s(fails)
                    self.retry_at[slot] = time.monotonic() + delay
                    self.note(f"handoff watch: hook failed for {key} ({why}); retry {fails + 1} of "
                              f"{self.opts.exec_retries} in {delay:.0f}s")
                    return self.retry_at[slot]
                path = local.record_dead_letter(self.ws, sid, self.opts.consumer,
                                                {"key": key, "attempts": fails, "last_error": why,
                                                 "at": clock.now_ms(), "notification": n})
                self.note(f"handoff watch: giving up on {key} after {fails} attempts ({why}); recorded in {path}; "
                          "the entry stays in `handoff inbox` until answered")
                self._record(sid, key)
                return None
            self.failures.pop(slot, None)
            self.retry_at.pop(slot, None)
        self.emit(n)
        self._record(sid, key, batch=not self.opts.exec_argv)
        self.count += 1
        return None

    def _record(self, sid: str, key: str, batch: bool = False) -> None:
        """Remember a delivered key.  Plain output is recorded in batches (one fsync per
        RECORD_BATCH entries and at the end of every scan): a crash in between repeats
        at most that many lines, never skips one.  Hook deliveries are recorded one by one."""
        self._cursor(sid).add(key)
        self._unrecorded.setdefault(sid, []).append(key)
        if not batch or len(self._unrecorded[sid]) >= RECORD_BATCH:
            self.flush()

    def flush(self) -> None:
        for sid, keys in list(self._unrecorded.items()):
            if keys:
                local.record_cursor(self.ws, sid, self.opts.consumer, keys)
        self._unrecorded.clear()

    # the loop -------------------------------------------------------------
    def run(self) -> int:
        state = self.ws.state(refresh=True)
        watched = self.sessions(state, strict=True)  # unknown sessions fail before anything starts
        if self.opts.once:
            try:
                self.scan()
            except Stop:
                pass
            return self.count
        served = ["*"] if self.opts.all_sessions else [s["session_id"] for s in watched]
        with local.registered_watcher(self.ws, served):  # `handoff doctor` looks for running watchers
            return self._loop()

    def _loop(self) -> int:
        fw = make_watcher(self.ws, self.opts.poll, self.opts.rescan_interval)
        self.mode = fw.mode
        if fw.fallback_reason:
            self.note(f"handoff watch: polling ({fw.fallback_reason})")
        gate = _SigtermGate()
        try:
            timeout = self.scan()
            while not gate.requested:
                with gate.interruptible():
                    fw.wait(timeout)
                timeout = self.scan()
        except Stop:
            pass
        finally:
            gate.restore()
            fw.stop()
        return self.count


class _SigtermGate:
    """SIGTERM stops the watcher between deliveries, never between an output and its cursor record:
    while blocked in wait it raises Stop at once; otherwise it sets ``requested`` for the loop."""

    def __init__(self):
        self.requested = False
        self._waiting = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        self.requested = True
        if self._waiting:
            raise Stop()

    @contextlib.contextmanager
    def interruptible(self):
        if self.requested:
            raise Stop()
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
            self._old = None
