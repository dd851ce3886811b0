"""``handoff compact``: seal old, finished history into archive segments, in one commit.

Under the writer lock: the state (fresh from the index) and ``compaction.sealable`` say which event
files may go; only files committed in HEAD with the same bytes are sealed.  They are written into one
segment per month (``core/archive.py``), the segments are committed and the files removed in the same
commit (``commit_entries(..., removed=)``).  The segment is published before any file is removed, so
a crash in between leaves every event readable (twice, folded once); the next ``compact`` finishes
the job: it also commits a segment the work tree holds but HEAD does not, and removes from HEAD any
event file a segment there already holds byte for byte.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from handoff.core import archive, compaction
from handoff.core.arguments import duration_ms
from handoff.core.model import format_ts, parse_ts
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.git import revision
from handoff.store import archive as store_archive
from handoff.store import clock
from handoff.store import files as store
from handoff.store.place import HANDOFFS

if TYPE_CHECKING:
    from handoff.app.workspace import Workspace


def cut_of(before: str, now_ms: int) -> int:
    """``30d`` (an age: that long before now) or an RFC 3339 time -> the cut, in ms."""
    span = duration_ms(before, "mhdw", bare=False)
    ms = now_ms - int(span) if span is not None else parse_ts(before.strip())
    if ms is None:
        raise HandoffError("invalid_argument", f"--before {before!r} is neither an age nor a time",
                           hint="use an age like 30d, 12h, 2w, or a time like 2026-11-01T00:00:00Z")
    return ms


def compact(ws: Workspace, *, before: str, dry_run: bool = False) -> dict[str, Any]:
    from handoff.git import commit as gitcommit
    now = clock.now_ms()
    cut = cut_of(before, now)
    paths = ws.paths
    wt = paths.worktree
    with store.file_lock(paths.shared / "lock"):
        tmp_dir = paths.local / "tmp"
        store.sweep_temp(tmp_dir)
        gitcommit.sweep_private(paths)
        _ref, head, skipped = gitcmd.head_state(paths)
        if skipped or head is None:
            raise HandoffError("commit_failed", f"cannot compact now: {skipped or 'the branch has no commit yet'}",
                               hint="compaction removes files and must commit them; finish that first")
        state = ws.state(refresh=True)
        records = ws.records()
        in_head = {e.path: e.blob for e in revision.tree_entries(wt, head, revision.EVENTS_PREFIX)
                   if e.mode == "100644"}
        head_segs = {e.path for e in revision.tree_entries(wt, head, f"{HANDOFFS}/{store_archive.ARCHIVE}/")}
        held = {f"{HANDOFFS}/{p}": b for p, b, _body in store_archive.entries(ws.root)}  # what segments hold now
        files: dict[str, bytes] = {}
        for rel in compaction.sealable(records, state, cut):
            path = f"{HANDOFFS}/{rel}"
            if path not in in_head or held.get(path) == in_head[path]:
                continue  # not committed as it is (or already sealed: removed below)
            try:
                data = store.read_event_file(ws.root, rel, None)
            except OSError:
                continue
            if archive.blob_id(data) == in_head[path]:
                files[path] = data
        segments = archive.segments_of(files) if files else {}
        pending = [rel for rel, _st in store_archive.list_segments(ws.root)
                   if f"{HANDOFFS}/{rel}" not in head_segs and f"{HANDOFFS}/{rel}" not in segments]
        removed = sorted(p for p, b in in_head.items() if p in files or held.get(p) == b)
        result: dict[str, Any] = {
            "before": format_ts(cut), "dry_run": dry_run, "sealed": len(files), "removed": len(removed),
            "segments": sorted(segments) + [f"{HANDOFFS}/{rel}" for rel in pending],
            "bytes": sum(len(d) for d in segments.values()), "committed": False, "commit": None,
            "remaining": len(in_head) - len(removed)}
        if dry_run or not (segments or pending or removed):
            return result
        gitcommit.wait_index_unlocked(paths)
        staged = []
        try:
            for seg, data in segments.items():
                staged.append((seg, data, store.stage(data, tmp_dir, seg.rsplit("/", 1)[-1])))
            adds = [seg for seg, _d, _t in staged] + [f"{HANDOFFS}/{rel}" for rel in pending]
            blobs = gitcommit.hash_files(paths, [t for _s, _d, t in staged] + [f"{HANDOFFS}/{rel}" for rel in pending])

            def publish() -> None:  # the segments first: until the files go, every event is in both places
                for seg, data, tmp in staged:
                    store_archive.publish(wt, seg, data, tmp_dir, staged=tmp)
                for path in removed:
                    try:
                        os.unlink(wt / path)
                    except FileNotFoundError:
                        pass
                    _prune(wt, path)

            message = (f"handoff: compact {len(removed)} event files before {format_ts(cut)[:10]} into "
                       f"{len(adds)} archive segment(s)\n\nSealed files stay readable from .handoffs/archive/; "
                       "`handoff verify` checks each removal against the segment.\n")
            try:
                result["commit"] = gitcommit.commit_entries(paths, sorted(zip(adds, blobs)), message, publish,
                                                            removed=removed)
                result["committed"] = True
            except gitcommit.CommitSkipped as exc:
                result["commit_skipped"] = f"{exc}: sealed and removed, not committed; run compact again"
        finally:
            store.discard([t for _s, _d, t in staged])
        ws.wrote = True
        ws.state(refresh=True)
        return result


def _prune(wt, path: str) -> None:
    """Remove the day and month folders a removal left empty (git does not keep empty folders either)."""
    parts = path.split("/")
    for i in (len(parts) - 1, len(parts) - 2):
        try:
            os.rmdir(wt / "/".join(parts[:i]))
        except OSError:
            return
