"""The shell of ``handoff report``: reduce the merge base and the branch tip, hand both to ``report``.

Three git calls whatever the size of history (two ``ls-tree``, one
``cat-file --batch``), plus the few that resolve the range.
"""
from __future__ import annotations

from handoff.app.verify import resolve_range
from handoff.core import approvals, checks, reducer
from handoff.core.config import parse_config_or_empty
from handoff.git import cmd as gitcmd
from handoff.git import remotes, revision
from handoff.git.revision import EMPTY_TREE
from handoff.store import files as store
from handoff.views import report


def branch_activity(repo: str | None, *, base: str | None = None, rev: str | None = None) -> dict:
    paths = gitcmd.discover(repo)
    cwd = paths.worktree
    rng = resolve_range(cwd, base=base, rev=rev, staged=False, everything=False)
    head_entries = [e for e in revision.tree_entries(cwd, rng["head"], revision.EVENTS_PREFIX)
                    if revision.is_event_entry(e)]
    base_entries = [] if rng["base"] == EMPTY_TREE else [
        e for e in revision.tree_entries(cwd, rng["base"], revision.EVENTS_PREFIX) if revision.is_event_entry(e)]
    from handoff.core.yaml.codec import MAX_FILE_BYTES
    blobs = revision.read_blobs(cwd, {e.blob for e in head_entries + base_entries if e.mode == "100644"},
                                limit=MAX_FILE_BYTES + 1)
    archives = [] if rng["base"] == EMPTY_TREE else revision.tree_entries(cwd, rng["base"], revision.ARCHIVE_PREFIX)
    head_archives = revision.tree_entries(cwd, rng["head"], revision.ARCHIVE_PREFIX)
    segments = revision.read_segments(cwd, archives + head_archives)  # (sealed events: read as files)
    head_entries += revision.unpack(head_entries + head_archives, segments, blobs)
    base_entries += revision.unpack(base_entries + archives, segments, blobs)
    head_recs = revision.decode_blobs(head_entries, blobs)
    base_recs = revision.decode_blobs(base_entries, blobs)
    config = _config(paths)
    context = remotes.context_records(paths, config, {e.path for e in head_entries + base_entries})
    admins = checks.admins_of(config)
    policy = approvals.policy_of(config)
    head_state = reducer.reduce(head_recs + remotes.not_held(context, head_recs), admins, policy)
    base_state = reducer.reduce(base_recs + remotes.not_held(context, base_recs), admins, policy)
    new_ids = _ids(head_recs) - _ids(base_recs)
    rep = report.build(base_state, head_state, new_ids)
    proc = gitcmd.run(cwd, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    branch = proc.stdout.decode().strip() if rev is None and proc.returncode == 0 else (rev or "HEAD")
    return {"branch": branch, "base": rng["base"], "head": rng["head"], "against": rng["against"], **rep}


def _ids(records: list[dict]) -> set[str]:
    return {r["event"]["id"] for r in records if "event" in r}


def _config(paths: gitcmd.RepoPaths) -> dict:
    if not store.is_real_file(paths.worktree, f"{revision.HANDOFFS}/config.yaml"):
        return {}  # (missing, or reached through a symlink: never read)
    try:
        data = (paths.worktree / revision.HANDOFFS / "config.yaml").read_bytes()
    except OSError:
        return {}
    return parse_config_or_empty(data)
