"""Extra event sources: event files that are not in the work tree (remote-tracking branches).

A source names itself, gives a cheap ``stamp`` that changes whenever its files may have changed (tree
ids, say), lists its files as (path relative to .handoffs/, git blob id) and reads the blobs the parse
cache lacks.  ``SOURCES`` holds callables ``fn(ws) -> Source | list[Source] | None``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.store.place import Place

SOURCES: list[Callable[[Place], Source | list[Source] | None]] = []  # (_remote_source is appended below)


class Source:
    """Event files that are not in the work tree; a work-tree file with the same path hides its entry."""

    def __init__(self, name: str, stamp: str, entries: Callable[[], list[tuple[str, str]]],
                 read: Callable[[list[str]], dict[str, bytes]]):
        self.name, self.stamp, self.entries, self.read = name, stamp, entries, read


def _remote_source(ws: Place) -> list[Source] | None:
    """Events on remote-tracking branches (see ``remotes``): one source per branch, keyed by its tip.

    Costs no git process when there are no remote-tracking refs, one ``for-each-ref`` otherwise; a
    branch whose tip moved is listed with ``ls-tree`` and its new blobs read in one ``cat-file``.
    """
    if _only_remote_tracking(ws.config) and not _may_have_remote_refs(ws.paths.common_dir):
        return None  # the usual answer, found without importing remotes (a few ms of start-up)
    from handoff.git import remotes, revision
    patterns = remotes.patterns_of(ws.config)
    if not patterns or not remotes.may_have_refs(ws.paths.common_dir, patterns):
        return None
    cwd = ws.paths.worktree
    tips = remotes.ref_tips(cwd, patterns)

    def source(ref: str, sha: str) -> Source:
        sealed: dict[str, bytes] = {}  # blob -> bytes of the events the branch's archive segments hold

        def entries() -> list[tuple[str, str]]:
            out = {}
            files = [e for e in revision.tree_entries(cwd, sha, revision.EVENTS_PREFIX)
                     if revision.is_event_entry(e) and e.mode == "100644"]
            for e in files:
                out[e.rel] = e.blob
            segs = [e for e in revision.tree_entries(cwd, sha, revision.ARCHIVE_PREFIX) if revision.is_segment_entry(e)]
            if segs:
                for e in revision.unpack(files + segs, revision.read_segments(cwd, segs), sealed):
                    out.setdefault(e.rel, e.blob)
            return sorted(out.items())

        def read(blobs: list[str]) -> dict[str, bytes]:
            got = {b: sealed[b] for b in blobs if b in sealed}
            rest = [b for b in blobs if b not in got]
            return {**got, **(revision.read_blobs(cwd, rest, limit=store.MAX_FILE_BYTES + 1) if rest else {})}

        return Source(f"remote:{ref}", sha, entries, read)

    return [source(ref, sha) for ref, sha in tips]


def _only_remote_tracking(config: dict) -> bool:
    """The config's ``remote_refs`` (absent: the default) name only refs under refs/remotes/."""
    raw = config.get("remote_refs", ["refs/remotes/"])
    if isinstance(raw, str):
        raw = [raw]
    return isinstance(raw, list) and all(not isinstance(p, str) or not p.startswith("refs/")
                                         or p.startswith("refs/remotes/") for p in raw)


def _may_have_remote_refs(common_dir: Path) -> bool:
    """``remotes.may_have_refs`` for the default patterns (refs/remotes/...), without importing it.

    A copy on purpose: every read command asks this at start-up, and importing ``handoff.git.remotes``
    (with the git helpers it loads) would cost it a few ms when, as usual, there are no remote refs.
    """
    if (common_dir / "reftable").exists():
        return True
    remotes_dir = common_dir / "refs" / "remotes"
    try:
        if any(remotes_dir.iterdir()):
            return True
    except OSError:
        pass
    try:
        return b" refs/remotes/" in (common_dir / "packed-refs").read_bytes()
    except OSError:
        return False


ARCHIVE_SOURCE = "archive"


def is_remote(src: str) -> bool:
    """A source read from another branch (its files lose to this branch's, see ``reducer.dedupe``); the
    archive is this branch's own history."""
    return bool(src) and src != ARCHIVE_SOURCE


def _archive_source(ws: Place) -> Source | None:
    """Sealed events (``store/archive.py``): this branch's own, read beside the work tree.

    Its stamp is the segments' names and stats: one ``stat`` when there is no archive, a ``scandir`` of
    ``archive/`` and of each month folder otherwise.
    """
    if not os.path.isdir(ws.root / "archive"):
        return None  # (the usual answer: nothing imported, one stat)
    from handoff.store import archive
    stamp = archive.stamp(ws.root)
    if stamp is None:
        return None
    held: dict[str, bytes] = {}

    def entries() -> list[tuple[str, str]]:
        out = []
        for path, blob, body in archive.entries(ws.root):
            held[blob] = body
            out.append((path, blob))
        return out

    def read(blobs: list[str]) -> dict[str, bytes]:
        if not held:
            entries()
        return {b: held[b] for b in blobs if b in held}

    return Source(ARCHIVE_SOURCE, stamp, entries, read)


SOURCES.append(_archive_source)
SOURCES.append(_remote_source)
