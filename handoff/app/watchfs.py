"""Filesystem change hints for ``.handoffs/`` (the only module that imports watchdog).

Answers one question fast: "may something under ``.handoffs`` have changed?".
Events are hints: the caller re-reads the files and decides what is new.  A
spurious True costs a rescan, a missed change loses a message, so every choice
leans towards signalling.  Traps handled (reference storage.md 2.9 and 3.2):

* A recursive watch goes deaf for good once its root is deleted (``git checkout``
  of a branch without ``.handoffs``), with inotify *and* polling.  So the root
  is watched too; when ``.handoffs`` is deleted, created or moved a worker
  re-arms the recursive watch and signals (files written before it existed
  were never reported).
* inotify limits (ENOSPC, EMFILE) raise ``OSError`` when the native observer is
  built or a watch added: auto mode then falls back to ``PollingObserver``.
* On queue overflow watchdog 7 only logs a warning and rebuilds its watches; the
  lost events are gone.  ``_OverflowHook`` spots that record to re-arm and
  signal.  If the app raises watchdog's log level above WARNING the hook is
  blind; relevant events that did arrive still signal, and the reconcile tick
  (``rescan_interval``) guarantees one regardless.
* Readers must not wake us: event filters keep IN_OPEN/IN_CLOSE_NOWRITE out of
  the kernel mask, so re-reading files is silent (and the queue stays small).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from contextlib import suppress

from watchdog import events as ev
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

GIT_FILES = ("HEAD", "ORIG_HEAD", "FETCH_HEAD", "index")
_ROOT_FILTER = [ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]
_GIT_FILTER = [ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileMovedEvent, ev.FileClosedEvent]
_TREE_FILTER = [*_GIT_FILTER, *_ROOT_FILTER]
_LIMIT_HINT = "raise sysctl fs.inotify.max_user_watches / fs.inotify.max_user_instances"


class _Handler(ev.FileSystemEventHandler):
    """Forwards every event to one callback (skips the on_* fan-out)."""

    def __init__(self, callback):
        self.dispatch = callback


class _OverflowHook(logging.Filter):
    """Turns watchdog's "Inotify queue overflowed" warning into a callback.  A
    filter that keeps every record: logging output is unchanged by our presence."""

    LOGGER = "watchdog.observers.inotify_c"

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def filter(self, record):
        if "overflow" in str(record.msg).lower():
            self._callback()
        return True


class FileWatcher:
    """Debounced "something under .handoffs may have changed" signal.

    Threads: watchdog's (our handler only stamps a time under ``_cond``) and one
    worker that re-arms the recursive watch and emits the reconcile tick, so no
    I/O runs on watchdog's dispatch thread and the consumer never does I/O in wait().
    """

    def __init__(self, worktree: str | os.PathLike, git_dir: str | os.PathLike, *,
                 poll: bool | None = None, poll_interval: float = 0.5, quiet: float = 0.03,
                 max_delay: float = 0.2, rescan_interval: float = 30.0) -> None:
        self.worktree = os.path.abspath(os.fspath(worktree))
        self.git_dir = os.path.abspath(os.fspath(git_dir))
        self.handoffs = os.path.join(self.worktree, ".handoffs")
        self._prefix = self.handoffs + os.sep
        self._git_files = frozenset(os.path.join(self.git_dir, n) for n in GIT_FILES)
        self._poll, self._poll_interval = poll, poll_interval
        self._quiet, self._max_delay = quiet, max_delay
        self._tick = rescan_interval if rescan_interval and rescan_interval > 0 else None
        self.mode: str | None = None  # "inotify" or "polling" once started
        self.fallback_reason: str | None = None
        self.overflow_count = self.rearm_count = 0
        self._cond = threading.Condition()
        self._first: float | None = None  # monotonic stamps of the pending burst
        self._last: float | None = None
        self._want_rearm = self._stopping = False
        self._observer: BaseObserver | None = None
        self._tree_watch: ObservedWatch | None = None
        self._worker: threading.Thread | None = None
        self._hook: _OverflowHook | None = None
        self._handler = _Handler(self._on_event)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._observer is not None or self._stopping:
            raise RuntimeError("FileWatcher can only be started once")
        for path in (self.worktree, self.git_dir):
            if not os.path.isdir(path):
                raise NotADirectoryError(path)
        # Benign watchdog race: for `mkdir -p a/b` it watches b while handling a's
        # IN_CREATE, then warns when b's own IN_CREATE re-adds the same callback.
        warnings.filterwarnings("ignore", r"Callback with id .* already exists", RuntimeWarning, r"watchdog\.")
        if self._poll is not True:
            self._hook = _OverflowHook(self._on_overflow)  # before any watch exists
            logging.getLogger(_OverflowHook.LOGGER).addFilter(self._hook)
            try:
                self._start_observer(Observer())
                # watchdog types Observer as a callable Protocol; at run time it is the platform's observer class
                name = Observer.__name__  # type: ignore[attr-defined]
                self.mode = "inotify" if name == "InotifyObserver" else "native"
            except OSError as exc:
                self._unhook()
                if self._poll is False:
                    raise
                self.fallback_reason = f"{type(exc).__name__}: {exc} ({_LIMIT_HINT})"
                log.warning("native file watching unavailable, polling instead: %s", self.fallback_reason)
        if self._observer is None:
            self._start_observer(PollingObserver(timeout=self._poll_interval))
            self.mode = "polling"
        self._worker = threading.Thread(target=self._run, name="handoff-watchfs", daemon=True)
        self._worker.start()

    def _start_observer(self, observer) -> None:
        """Start first, then schedule: a watch is live when schedule() returns, so
        a ``.handoffs`` created once the root watch exists is always reported."""
        try:
            observer.start()
            observer.schedule(self._handler, self.worktree, recursive=False, event_filter=_ROOT_FILTER)
            observer.schedule(self._handler, self.git_dir, recursive=False, event_filter=_GIT_FILTER)
            self._observer = observer
            self._arm(strict=True)
        except BaseException:
            self._observer = self._tree_watch = None
            _shutdown(observer)  # also stops the emitters and inotify thread already started
            raise

    def stop(self) -> None:
        """Idempotent; releases blocked waiters, joins our worker and watchdog's threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._unhook()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._observer is not None:
            _shutdown(self._observer)
            self._observer = self._tree_watch = None

    def _unhook(self) -> None:
        if self._hook is not None:
            logging.getLogger(_OverflowHook.LOGGER).removeFilter(self._hook)
            self._hook = None

    def __enter__(self) -> FileWatcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = None) -> bool:
        """True once a change is pending and its burst settled (``quiet`` without
        events, or ``max_delay`` after its first event).  A burst still settling
        when ``timeout`` expires is returned as True rather than held back.
        False on timeout with nothing pending, or once stopped."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        with self._cond:
            if self._observer is None and not self._stopping:
                raise RuntimeError("FileWatcher.wait() before start()")
            wake: float | None
            while True:
                now = time.monotonic()
                expired = deadline is not None and now >= deadline
                if self._first is not None:
                    assert self._last is not None  # _mark() stamps both, both are cleared together
                    ready = min(self._last + self._quiet, self._first + self._max_delay)
                    if now >= ready or expired or self._stopping:
                        self._first = self._last = None
                        return True
                    wake = ready if deadline is None else min(ready, deadline)
                elif expired or self._stopping:
                    return False
                else:
                    wake = deadline
                self._cond.wait(None if wake is None else wake - now)

    # ------------------------------------------ watchdog's threads: O(1), no I/O
    def _mark(self) -> None:
        """Stamp a change (caller holds ``_cond``); wake waiters on a new burst."""
        self._last = time.monotonic()
        if self._first is None:
            self._first = self._last
            self._cond.notify_all()

    def _on_event(self, event) -> None:
        src, dest = event.src_path, getattr(event, "dest_path", "") or ""
        if event.is_directory:
            if self.handoffs in (src, dest):
                with self._cond:  # .handoffs deleted/created/moved: the watch is stale
                    self._want_rearm = True
                    self._cond.notify_all()
            elif event.event_type != "deleted" and self._in_tree(dest or src):
                with self._cond:  # new bucket dir: belt and braces for its files
                    self._mark()
            return
        path = dest if event.event_type == "moved" else src
        if path in self._git_files or (path.endswith(".yaml") and self._in_tree(path)):
            with self._cond:
                self._mark()

    def _in_tree(self, path: str) -> bool:
        """Below .handoffs/ with no component starting with '.' (temp names)."""
        return path.startswith(self._prefix) and (os.sep + ".") not in path[len(self._prefix) - 1:]

    def _on_overflow(self) -> None:
        with self._cond:
            self.overflow_count += 1
            self._want_rearm = True
            self._mark()

    # ------------------------------------------------------------ worker thread
    def _run(self) -> None:
        """Re-arm on request; on each tick re-arm if unhealthy, then signal."""
        next_tick = None if self._tick is None else time.monotonic() + self._tick
        while True:
            with self._cond:
                while not (self._stopping or self._want_rearm):
                    left = None if next_tick is None else next_tick - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping:
                    return
                rearm, self._want_rearm = self._want_rearm, False
            tick = next_tick is not None and time.monotonic() >= next_tick
            if tick:
                assert self._tick is not None  # next_tick is None when there is no tick
                next_tick = time.monotonic() + self._tick
            try:
                if rearm or (tick and not self._healthy()):
                    self.rearm_count += 1
                    self._arm()
            except Exception:  # never let the worker die: the next tick retries
                log.exception("re-arming the watch on %s failed", self.handoffs)
            with self._cond:  # re-arm or tick: the caller must rescan
                self._mark()

    def _healthy(self) -> bool:
        """Armed iff .handoffs exists, and its emitter thread is still alive."""
        if not os.path.isdir(self.handoffs):
            return self._tree_watch is None
        assert self._observer is not None  # set before the worker starts, cleared only once it is joined
        return any(e.watch == self._tree_watch and e.is_alive() for e in list(self._observer.emitters))

    def _arm(self, strict: bool = False) -> None:
        """(Re)schedule the recursive .handoffs watch.  Only start() and then the
        worker call this, never under ``_cond``: watchdog's dispatcher holds the
        observer lock while it calls our handler, which takes ``_cond``."""
        observer, old, self._tree_watch = self._observer, self._tree_watch, None
        assert observer is not None  # start() sets it before the first call and stop() clears it after the last
        if old is not None:  # its emitter may be dead; scheduling the same path
            with suppress(KeyError):  # again would silently reuse it
                observer.unschedule(old)
        if not os.path.isdir(self.handoffs):
            return
        try:
            self._tree_watch = observer.schedule(self._handler, self.handoffs, recursive=True,
                                                 event_filter=_TREE_FILTER)
        except OSError as exc:
            if strict and os.path.isdir(self.handoffs):  # a limit, not a race: fall back
                raise
            # Vanished again (the root watch will say so) or a watch limit: the
            # next tick retries; meanwhile root and git-dir events still signal.
            log.warning("cannot watch %s: %s", self.handoffs, exc)


def _shutdown(observer) -> None:
    """Stop and join an observer, even one whose start() failed half-way."""
    observer.stop()
    if observer.is_alive():
        observer.join()
