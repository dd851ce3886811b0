"""Finding what changed in the work tree: one ``stat`` per directory under ``.handoffs/events/``.

A directory whose mtime is unchanged is not listed again.  Adding or removing a file changes its
directory's mtime; an mtime too close to the moment it was read (git's "racy" rule) is not trusted.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from handoff.index.db import py_path, sql_path

RACY_NS = 3_000_000_000  # a directory or file modified this close to when we read it is read again next time
FINE_RACY_NS = 200_000_000  # the same where timestamps are finer than a second (see _racy)

if TYPE_CHECKING:
    from handoff.index.sources import Source


class Plan:
    """What changed since the view was last folded: the work tree's scan and the extra sources."""

    scan: Scan

    def __init__(self) -> None:
        self.cold = False  # no state yet: everything is read and folded
        self.gen: int | None = None  # the state's generation when planned (another command may fold meanwhile)
        self.sources: list[Source] = []
        self.stamps: dict[str, str] = {}  # each source's stamp when last folded
        self.new_stamps: dict[str, str] = {}  # and now


class Scan:
    def __init__(self, now: int):
        self.now = now
        self.dirs: dict[str, int] = {}  # relisted directories -> mtime to remember (0: racy, relist next time)
        self.gone_dirs: list[str] = []
        self.present: list[tuple[str, tuple | None, str | None]] = []  # new or changed files
        self.prev: dict[str, str] = {}  # the blob each changed file had before (absent: a new file)
        self.gone: list[str] = []  # files that disappeared
        self.changed = False


def dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


def stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _racy(ns: int, now: int) -> bool:
    """Too close to ``now`` for a later change to be sure to show in the timestamp (git's "racy" rule).

    A file system that keeps only whole seconds (or two) could give a change made a moment after we
    looked the same timestamp: 3 s covers it.  One that keeps finer timestamps (any that is not a whole
    second shows it) stamps from a clock that moves every few milliseconds: 200 ms is plenty, and a
    second read soon after a pull does not hash the pulled files again.
    """
    return ns >= now - (RACY_NS if ns % 1_000_000_000 == 0 else FINE_RACY_NS)


def stat_key(st: tuple | None, now: int) -> tuple[int, int, int, int]:
    if st is None:
        return (0, -1, 0, 0)
    size, mtime, ino, ctime = st
    if _racy(mtime, now) or _racy(ctime, now):
        mtime = -1  # too fresh to vouch for: hash it again next time
    return (size, mtime, ino, ctime)


def _is_dir(st: os.stat_result) -> bool:
    import stat as _stat
    return _stat.S_ISDIR(st.st_mode)


def scan_tree(root: Path, known_dirs: dict[str, int], now: int, db: sqlite3.Connection | None = None) -> Scan:
    """Compare ``root/events`` with what the index saw, listing only directories whose mtime moved.

    On a cold scan (no ``db``) files are not stat'ed here: the workers that read them do it.
    """
    scan = Scan(now)
    todo = _moved_dirs(root, known_dirs, scan)
    seen: set[str] = set()
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        scan.changed = True
        listed = _list_dir(root, d, known_dirs, todo, stat_files=db is not None)
        if listed is None:
            if d in known_dirs and d not in scan.gone_dirs:
                scan.gone_dirs.append(d)
            continue
        before, entries = listed
        scan.dirs[d] = 0 if _racy(before, now) else before
        old = {}
        if db is not None and d in known_dirs:
            old = {py_path(p): (b, pr, (sz, mt, ino, ct)) for p, b, pr, sz, mt, ino, ct in db.execute(
                "SELECT path, blob, problem, size, mtime, ino, ctime FROM files WHERE src='' AND dir=?", (sql_path(d),))}
        _compare(scan, entries, old)
    if scan.gone_dirs:
        _vanished(scan, known_dirs, db)
    return scan


def _moved_dirs(root: Path, known_dirs: dict[str, int], scan: Scan) -> list[str]:
    """The known directories to list again (mtime moved, or racy last time), plus ``events`` if new; those
    gone go to ``scan.gone_dirs``."""
    base = "events"
    todo: list[str] = []
    if base not in known_dirs:
        todo.append(base)
    top = f"{root}/"  # (string paths: ~160 directories at 100,000 events, pathlib would double the cost)
    for d, mtime in known_dirs.items():
        try:
            st = os.stat(top + d) if d == base else os.lstat(top + d)
        except OSError:
            st = None
        if st is None or not _is_dir(st):
            scan.gone_dirs.append(d)
            scan.changed = True
            continue
        if mtime == 0 or st.st_mtime_ns != mtime:
            todo.append(d)
    return todo


def _list_dir(root: Path, d: str, known_dirs: dict[str, int], todo: list[str],
              stat_files: bool) -> tuple[int, dict[str, tuple[tuple | None, str | None]]] | None:
    """(mtime before listing, rel -> (stat or None, problem or None)) of one directory's entries; new
    sub-directories go on ``todo``.  None when it is gone."""
    try:
        before = os.stat(root / d).st_mtime_ns
        it = os.scandir(root / d)
    except (FileNotFoundError, NotADirectoryError):
        return None
    entries: dict[str, tuple[tuple | None, str | None]] = {}
    with it:
        for entry in it:
            name = entry.name
            if name.startswith("."):
                continue
            rel = f"{d}/{name}"
            if entry.is_symlink():
                entries[rel] = (None, "symlink: not read")
            elif entry.is_dir(follow_symlinks=False):
                if rel not in known_dirs:
                    todo.append(rel)
            elif entry.is_file(follow_symlinks=False):
                if name.endswith(".yaml"):
                    entries[rel] = (stat_tuple(entry.stat(follow_symlinks=False)) if stat_files else None, None)
            else:
                entries[rel] = (None, "not a regular file: not read")
    return before, entries


def _compare(scan: Scan, entries: dict[str, tuple[tuple | None, str | None]], old: dict[str, tuple]) -> None:
    """Note in ``scan`` how a listed directory's entries differ from its rows in the file table (``old``)."""
    for rel in old:
        if rel not in entries:
            scan.gone.append(rel)
    for rel, (st_, problem) in entries.items():
        prev = old.get(rel)
        if problem:
            if prev is None or prev[1] != problem:
                scan.present.append((rel, None, problem))
                if prev is not None:
                    scan.gone.append(rel)
            continue
        if prev is not None and prev[1] is None and prev[2][1] != -1 and prev[2] == st_:
            continue  # unchanged
        if prev is not None:
            if prev[1] is not None:
                scan.gone.append(rel)  # it was a problem entry: its diagnostic goes
            else:
                scan.prev[rel] = prev[0]
        scan.present.append((rel, st_, None))


def _vanished(scan: Scan, known_dirs: dict[str, int], db: sqlite3.Connection | None) -> None:
    """Sub-directories of a vanished directory vanish too, and every file the table had in them."""
    gone = set(scan.gone_dirs)
    for d in known_dirs:
        if d not in gone and any(d.startswith(g + "/") for g in gone):
            gone.add(d)
    scan.gone_dirs = sorted(gone)
    if db is not None:
        for g in scan.gone_dirs:
            scan.gone.extend(py_path(r[0]) for r in db.execute("SELECT path FROM files WHERE src='' AND dir=?",
                                                               (sql_path(g),)))
