"""Which commit added each event file: one ``git log`` for the whole history.

Event files are never modified, renamed or deleted, so the commit that added
a file is its whole git story.  One walk of the history reachable from HEAD
(``--diff-filter=A``, merge commits contribute nothing without ``-m``) maps
every committed file to its commit, however many files are asked about.

Plumbing, not GitPython: on 2,000 commits ``repo.iter_commits`` with a tree
diff over its object API is over 20 times slower, with ``commit.diff`` (one
process per commit) over 100 times (bench/gitpython.py, docs/PERFORMANCE.md).
"""
from __future__ import annotations

from handoff.git import cmd as gitcmd

_FORMAT = "%x01%H%x1f%an%x1f%ae%x1f%aI"


def parse_log(raw: bytes) -> dict[str, dict]:
    """``git log -z --name-only --format=_FORMAT`` output -> {repo-relative path: commit}.

    A path added more than once (a cherry-pick of the same file) keeps the
    oldest commit the walk saw.
    """
    out: dict[str, dict] = {}
    for chunk in raw.decode("utf-8", "replace").split("\x01"):
        if not chunk:
            continue
        header, _, names = chunk.partition("\0")
        fields = header.split("\x1f")
        if len(fields) != 4:
            continue
        sha, name, email, date = fields
        commit = {"sha": sha, "author_name": name, "author_email": email, "date": date}
        for path in names.lstrip("\n").split("\0"):
            path = path.strip("\n")
            if path:
                out[path] = commit  # git log walks newest first: the last one seen is the oldest
    return out


def added_by(paths: gitcmd.RepoPaths, prefix: str = ".handoffs/events") -> dict[str, dict]:
    """Every committed file under ``prefix`` -> the commit that added it (empty on an unborn branch)."""
    proc = gitcmd.run(paths.worktree, "-c", "core.quotePath=false", "log", "--diff-filter=A", "--name-only", "-z",
                      "--no-renames", f"--format={_FORMAT}", "--", prefix, check=False)
    if proc.returncode != 0:
        return {}
    return parse_log(proc.stdout)
