"""Archive segments on disk: ``.handoffs/archive/<YYYY-MM>/<sha256>.archive`` (format: ``core/archive.py``).

Segments are listed with one ``scandir`` of ``archive/`` and one per month folder (a handful, whatever
the number of events), read without following symlinks, and published like event files (staged,
fsynced, hard-linked: never overwritten).  A segment that does not decode, or an entry whose bytes do
not match its blob id, is skipped here (``verify`` reports it); the rest is read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from handoff.store import files as store

ARCHIVE = "archive"  # under .handoffs/
SUFFIX = ".archive"


def list_segments(root: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """(path relative to ``root`` (.handoffs/), (size, mtime_ns, ino)) of every segment, sorted."""
    out: list[tuple[str, tuple[int, int, int]]] = []
    try:
        months = os.scandir(root / ARCHIVE)
    except (FileNotFoundError, NotADirectoryError):
        return out
    if os.path.islink(root / ARCHIVE):
        return out
    with months:
        for month in months:
            if month.name.startswith(".") or not month.is_dir(follow_symlinks=False):
                continue
            try:
                segs = os.scandir(month.path)
            except OSError:
                continue
            with segs:
                for seg in segs:
                    if seg.name.endswith(SUFFIX) and not seg.name.startswith(".") \
                            and seg.is_file(follow_symlinks=False):
                        st = seg.stat(follow_symlinks=False)
                        out.append((f"{ARCHIVE}/{month.name}/{seg.name}", (st.st_size, st.st_mtime_ns, st.st_ino)))
    return sorted(out)


def stamp(root: Path) -> str | None:
    """A value that changes whenever a segment is added, removed or rewritten; None when there is none."""
    segs = list_segments(root)
    return "|".join(f"{rel}:{s}:{m}:{i}" for rel, (s, m, i) in segs) if segs else None


def read_segment(root: Path, rel: str) -> bytes:
    fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{rel} is not a regular file")
        return fh.read()


def entries(root: Path) -> list[tuple[str, str, bytes]]:
    """Every sound entry of every segment: (path relative to .handoffs/, blob id, bytes), one per path
    (the first segment in path order holding it), sorted by path."""
    from handoff.core import archive  # (only when segments are read: the warm path only lists them)
    out: dict[str, tuple[str, bytes]] = {}
    for rel, _st in list_segments(root):
        try:
            data = read_segment(root, rel)
        except OSError:
            continue
        good, _problems = archive.check(f"{root.name}/{rel}", data)
        for path, blob, body in good:
            out.setdefault(path[len(root.name) + 1:], (blob, body))
    return [(p, b, body) for p, (b, body) in sorted(out.items())]


def publish(worktree: Path, rel: str, data: bytes, tmp_dir: Path, staged: Path | None = None) -> bool:
    """Publish the segment ``rel`` (repo-relative; ``staged``: its bytes already staged with
    ``store.stage``); False when the same segment is already there (its name is its content's hash, so
    an existing one with the same bytes is the same file)."""
    if store.is_real_file(worktree, rel):
        try:
            if read_segment(worktree, rel) == data:
                return False
        except OSError:
            pass
    if staged is None:
        store.publish(worktree, rel, data, tmp_dir)
    else:
        store.link(staged, worktree, rel)
    return True
