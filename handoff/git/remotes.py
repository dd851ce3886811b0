"""Events on remote-tracking branches, read without checking them out.

After ``handoff sync`` (or any ``git fetch``), the refs matching the config
key ``remote_refs`` (default ``refs/remotes/origin/*``) hold other branches'
events.  Every read unions them with the work tree, so an agent on
``feature-a`` sees what an agent on ``feature-b`` wrote, without merging and
without switching branch.  Files the work tree already has are skipped, and
the reducer drops identical events met twice, so nothing counts double.

Cost: with no matching refs, no git process at all (the ref store is
checked on disk first).  With refs, one ``for-each-ref``; the decoded
records are cached under the git common dir, keyed by the ref tips, so only
a fetch that moved a ref pays for ``cat-file --batch-check``, one
``ls-tree`` per distinct events tree and one ``cat-file --batch``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from handoff.core import reducer
from handoff.git import cmd as gitcmd
from handoff.git import revision
from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.store.place import Place

DEFAULT_REFS = ("refs/remotes/origin/*",)
CACHE_NAME = "remote-records.json"
CACHE_VERSION = 2


def patterns_of(config: dict) -> list[str]:
    raw = config.get("remote_refs", list(DEFAULT_REFS))
    if raw in (None, False, "off", "none"):
        return []
    if isinstance(raw, str):
        raw = [raw]
    return [str(p) for p in raw if isinstance(p, str) and p.startswith("refs/")]


def may_have_refs(common_dir: Path, patterns: list[str]) -> bool:
    """False only when the ref store certainly holds no ref under refs/remotes/ (no git call)."""
    if not all(p.startswith("refs/remotes/") for p in patterns) or (common_dir / "reftable").exists():
        return True
    remotes = common_dir / "refs" / "remotes"
    if remotes.is_dir() and any(remotes.iterdir()):
        return True
    try:
        return b" refs/remotes/" in (common_dir / "packed-refs").read_bytes()
    except OSError:
        return False


def ref_tips(cwd: Path, patterns: list[str]) -> list[tuple[str, str]]:
    """(ref name, commit id) of every ref matching ``patterns``, symbolic refs skipped."""
    proc = gitcmd.run(cwd, "for-each-ref", "--format=%(objectname) %(objecttype) %(refname) %(symref)", *patterns,
                      check=False)
    out = []
    for line in proc.stdout.decode().splitlines():
        parts = line.split(" ")
        if len(parts) >= 3 and parts[1] == "commit" and not (len(parts) > 3 and parts[3]):
            out.append((parts[2], parts[0]))
    return sorted(out)


def records_on_refs(cwd: Path, tips: list[tuple[str, str]], decoder=revision.decode_blobs) -> list[dict]:
    """Decoded records of every events tree the refs hold; each carries ``ref`` (the first ref holding it)."""
    if not tips:
        return []
    spec = "".join(f"{sha}:{revision.HANDOFFS}\n" for _ref, sha in tips).encode()  # (events and archive)
    proc = gitcmd.run(cwd, "cat-file", "--batch-check", input=spec)
    first_ref_of_tree: dict[str, tuple[str, str]] = {}
    for (ref, sha), line in zip(tips, proc.stdout.decode().splitlines()):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "tree":
            first_ref_of_tree.setdefault(parts[0], (ref, sha))
    seen: dict[tuple[str, str], str] = {}
    sealed: dict[str, bytes] = {}  # the events archive segments hold (blob -> bytes)
    for ref, sha in first_ref_of_tree.values():
        files = [e for e in revision.tree_entries(cwd, sha, revision.EVENTS_PREFIX)
                 if revision.is_event_entry(e) and e.mode == "100644"]
        segs = [e for e in revision.tree_entries(cwd, sha, revision.ARCHIVE_PREFIX) if revision.is_segment_entry(e)]
        if segs:
            files += revision.unpack(files + segs, revision.read_segments(cwd, segs), sealed)
        for e in files:
            seen.setdefault((e.path, e.blob), ref)
    entries = [revision.Entry("100644", blob, path) for (path, blob) in seen]
    from handoff.core.yaml.codec import MAX_FILE_BYTES
    blobs = revision.read_blobs(cwd, (e.blob for e in entries if e.blob not in sealed), limit=MAX_FILE_BYTES + 1)
    blobs.update(sealed)
    records = decoder(entries, blobs)
    for e, rec in zip(entries, records):
        rec["ref"] = seen[(e.path, e.blob)]
    return records


def remote_records(ws: Place, local_paths: set[str]) -> list[dict]:
    """Records from the configured remote-tracking refs that the work tree does not already hold."""
    patterns = patterns_of(ws.config)
    if not patterns or not may_have_refs(ws.paths.common_dir, patterns):
        return []
    tips = ref_tips(ws.paths.worktree, patterns)
    if not tips:
        return []
    records = _cached(ws.paths.shared / CACHE_NAME, patterns, tips, ws.paths.worktree)
    return [r for r in records if r["path"] not in local_paths]


def _cached(cache: Path, patterns: list[str], tips: list[tuple[str, str]], cwd: Path) -> list[dict]:
    key = hashlib.sha256(json.dumps([CACHE_VERSION, reducer.REDUCER_VERSION, patterns, tips]).encode()).hexdigest()
    try:
        data = json.loads(cache.read_bytes())
        if data.get("key") == key:
            return data["records"]
    except (OSError, ValueError, AttributeError):
        pass
    records = records_on_refs(cwd, tips)
    try:
        store.atomic_write_local(cache, json.dumps({"key": key, "records": records}, ensure_ascii=False).encode())
    except OSError:
        pass  # a cache we cannot write only costs time
    return records


def context_records(paths: gitcmd.RepoPaths, config: dict, exclude: set[str]) -> list[dict]:
    """Events on the configured refs whose repo-relative path is not in ``exclude``: context for a
    revision that is not the work tree (``verify``, ``report``)."""
    patterns = patterns_of(config)
    if not patterns or not may_have_refs(paths.common_dir, patterns):
        return []
    tips = ref_tips(paths.worktree, patterns)
    if not tips:
        return []
    recs = _cached(paths.shared / CACHE_NAME, patterns, tips, paths.worktree)
    return [r for r in recs if f"{revision.HANDOFFS}/{r['path']}" not in exclude]


def not_held(context: list[dict], records) -> list[dict]:
    """The context records whose event id none of ``records`` carries."""
    ids = {r["event"]["id"] for r in records if "event" in r}
    return [r for r in context if "event" in r and r["event"]["id"] not in ids]
