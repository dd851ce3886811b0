"""Reading, hashing and parsing new files: in this process, split with one forked child, or on every core.

A file's blob id is computed in Python (``sha1("blob <len>\\0" + bytes)``, what ``git hash-object``
gives); a file whose (path, blob) the parse cache already holds is hashed, not parsed again.
"""
from __future__ import annotations

import marshal
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from handoff.index import stats
from handoff.index.records import blob_id, encode, lookup, parsed_at, store_parsed
from handoff.index.scan import stat_tuple
from handoff.index.stats import STATS
from handoff.store import files as store

PARALLEL_MIN = 1500  # below this many files to parse, one process is faster than starting workers
SPLIT_MIN = 200  # from this many, one forked child parses half of them (a fork costs a few ms; a pool, ~100)
KEEP_PARSED = 5000  # up to this many files parsed at once are handed back parsed (more: read back in order)


def _read(path: str) -> tuple[tuple[int, int, int, int], bytes]:
    """The file's stat (taken on the open file) and its bytes, at most one byte more than the size cap.

    (A buffered ``read(cap + 1)`` allocates the whole cap every time: sized reads are much faster.)
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))  # (listed as a file: never a link)
    try:
        st = os.fstat(fd)
        want = min(st.st_size, store.MAX_FILE_BYTES) + 1
        chunks = []
        while want > 0:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunks) == 1 and len(chunk) == st.st_size < want:
                break  # all of it, as fstat said: no second call just to see the end
            want -= len(chunk)
        return stat_tuple(st), chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def read_and_parse(db: sqlite3.Connection, root: Path, need: list[tuple[str, tuple | None]], rechecks: int = 0,
                    on_files: Callable[[list[tuple]], None] | None = None) -> list[tuple]:
    """(rel, stat, blob, record or None if the parse cache has it, problem) for each file.

    With ``on_files``, each batch's (rel, stat, blob, problem) go to it as they are read instead (while
    the workers parse the next ones), and nothing is returned.

    Newly parsed records go into the parse cache as they arrive; they are handed back only for a few
    thousand files (a fold of many files reads them back from the cache in event order: holding
    100,000 parsed events at once is what made a cold build big).  ``rechecks`` of them were seen
    before (touched, or too fresh to trust last time): they are likely only hashed, not parsed.
    """
    if not need:
        return []
    out = []
    keep = len(need) <= KEEP_PARSED

    def take(results: list[tuple]) -> None:
        parsed = []
        for rel, _st, blob, rec, okey, _problem in results:
            if rec is not None:
                STATS["parsed"] += 1
                parsed.append((rel, blob, rec, okey))
        store_parsed(db, parsed)
        if on_files is not None:
            on_files([(rel, st, blob, problem) for rel, st, blob, _rec, _okey, problem in results])
            return
        for rel, st, blob, rec, _okey, problem in results:
            out.append((rel, st, blob, marshal.loads(rec) if keep and rec is not None else None, problem))

    workers = _workers(len(need) - rechecks)
    if workers > 1:
        known = set(parsed_at(db, (rel for rel, _st in need), "blob", "okey IS NOT NULL"))  # (events held)
        _parse_parallel(root, need, known, workers, take)
        return out
    take(_parse_here(db, root, need))
    return out


def _parse_here(db: sqlite3.Connection, root: Path, need: list[tuple[str, tuple | None]]) -> list[tuple]:
    """(rel, stat, blob, record bytes, ordering key, problem) of each file, read and hashed in this process
    (record and key None where the parse cache has them)."""
    results: list[tuple] = []
    hashed = []
    for rel, st in need:
        try:
            st, data = _read(f"{root}/{rel}")
        except OSError as exc:
            results.append((rel, st, None, None, None, f"unreadable: {exc}"))
            continue
        hashed.append((rel, st, blob_id(data), data))
    have = lookup(db, [(h[0], h[2]) for h in hashed])
    todo = []
    for rel, st, blob, data in hashed:
        if (rel, blob) in have:
            results.append((rel, st, blob, None, None, None))
        else:
            todo.append((rel, st, blob, data))
    encoded = _encode_all([(rel, data) for rel, _st, _blob, data in todo])
    results.extend((rel, st, blob, rec, okey, None) for (rel, st, blob, _data), (rec, okey) in zip(todo, encoded))
    return results


def _encode_all(items: list[tuple[str, bytes]]) -> list[tuple[bytes, bytes | None]]:
    """``encode`` of each (path, bytes); a batch too small for a pool of workers but big enough to split
    is shared with one forked child (the parent does the first half, the child the second)."""
    half = len(items) // 2
    if len(items) < SPLIT_MIN or not _may_fork():
        return [encode(rel, data) for rel, data in items]
    rest: object
    theirs = _forked(lambda: marshal.dumps([encode(rel, data) for rel, data in items[half:]]))
    stats.trace(f"parse split {half}+{len(items) - half}")
    try:
        mine = [encode(rel, data) for rel, data in items[:half]]
    finally:
        rest = theirs()  # (always waited for: no child is left behind)
    if rest is not None:
        try:
            rest = marshal.loads(rest)
        except (ValueError, EOFError, TypeError):
            rest = None
    if not isinstance(rest, list) or len(rest) != len(items) - half:
        rest = [encode(rel, data) for rel, data in items[half:]]  # the child failed: do its half here
    return mine + rest


def _fork_safe() -> bool:
    """No other thread that a fork could catch holding a lock."""
    threading = sys.modules.get("threading")  # (never imported: no other thread)
    return hasattr(os, "fork") and (threading is None or threading.active_count() == 1)


def _may_fork() -> bool:
    """A second core to use, and a fork is safe."""
    return _cpus() > 1 and _fork_safe()


def _forked(work: Callable[[], bytes]) -> Callable[[], bytes | None]:
    """Run ``work`` in a forked child now; the returned call waits for its bytes (None if it failed)."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return lambda: None
    if pid == 0:  # the child: compute, write, leave at once (no finalizers: the parent's files stay its own)
        code = 1
        try:
            os.close(r)
            data = memoryview(work())
            while data:
                data = data[os.write(w, data):]
            code = 0
        finally:
            os._exit(code)
    os.close(w)

    def wait() -> bytes | None:
        chunks = []
        try:
            while True:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(r)
            _pid, status = os.waitpid(pid, 0)
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None
    return wait


_known_files: set = set()  # (path, blob) pairs whose events the parse cache holds (for the workers)


def _init_worker(known: set) -> None:
    global _known_files
    _known_files = known


def _parse_chunk(args: tuple[str, list]) -> list[tuple]:
    root, items = args
    out: list[tuple] = []
    for rel, st in items:
        try:
            st, data = _read(f"{root}/{rel}")
        except OSError as exc:
            out.append((rel, st, None, None, None, f"unreadable: {exc}"))
            continue
        blob = blob_id(data)
        if (rel, blob) in _known_files:
            out.append((rel, st, blob, None, None, None))
        else:
            out.append((rel, st, blob, *encode(rel, data), None))
    return out


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _workers(n: int) -> int:
    if n < PARALLEL_MIN:
        return 1
    return max(1, min(_cpus(), n // 500))


def _parse_parallel(root: Path, need: list, known: set, workers: int, take: Callable[[list[tuple]], None]) -> None:
    """Read, hash and parse on every core, handing results to ``take`` as they come.

    A progress line shows on a terminal when it takes more than a second.
    """
    import multiprocessing

    global _known_files
    progress = _Progress(len(need))
    fork = _fork_safe() and "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    size = max(50, min(500, len(need) // (workers * 16) or 50))
    chunks = [(str(root), need[i:i + size]) for i in range(0, len(need), size)]
    _known_files = known  # inherited by forked workers; spawned ones get it through the initializer
    try:
        with ctx.Pool(workers, initializer=None if fork else _init_worker, initargs=() if fork else (known,)) as pool:
            for part in pool.imap_unordered(_parse_chunk, chunks):
                take(part)
                progress.advance(len(part))
    finally:
        _known_files = set()
        progress.done()


class _Progress:
    """A progress line on stderr, only on a terminal and only once the work has taken a second."""

    def __init__(self, total: int):
        self.total = total
        self.count = 0
        self.start = time.monotonic()
        self.shown = False
        self.tty = total > 0 and sys.stderr.isatty()

    def advance(self, n: int) -> None:
        self.count += n
        if not self.tty:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < 1.0:
            return
        self.shown = True
        pct = 100 * self.count // max(1, self.total)
        bar = "#" * (pct // 4)
        sys.stderr.write(f"\rhandoff: indexing events [{bar:<25}] {self.count:,}/{self.total:,} ({elapsed:.0f}s)")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()
