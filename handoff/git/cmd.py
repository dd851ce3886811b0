"""Thin, fast git plumbing through subprocess.

Every git call goes through here except ``sync``'s push and fetch.  Reads,
writes, ``log``, ``verify`` and ``report`` call git's plumbing directly:
GitPython spawns the same processes, costs ~45 ms to import (``-X importtime``),
and its object API walks history over 20 times slower than one ``git log``
(``log`` on 2,000 commits: docs/PERFORMANCE.md, bench/gitpython.py).  GitPython
serves ``sync`` alone (``git.transfer``: git's progress as callbacks, push
results as flags), imported inside that module's functions only.

Every call passes an explicit environment with git's own repository
variables removed, so running inside a git hook (where git sets
GIT_INDEX_FILE, GIT_DIR, ...) cannot redirect us to the wrong index.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from handoff.errors import HandoffError

SCRUB = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX",
          "GIT_QUARANTINE_PATH", "GIT_COMMON_DIR", "GIT_NAMESPACE")


def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.setdefault("GIT_OPTIONAL_LOCKS", "0")
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


class GitError(HandoffError):
    def __init__(self, args: list[str], returncode: int, stderr: str):
        msg = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"
        super().__init__("git_failed", f"git {' '.join(args[:2])} failed: {msg}",
                         hint="run the git command by hand to see the full error")
        self.returncode = returncode
        self.stderr = stderr


def run(cwd: str | Path, *args: str, input: bytes | None = None, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env or clean_env())
    if check and proc.returncode != 0:
        raise GitError(list(args), proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc


def out(cwd: str | Path, *args: str, **kw) -> str:
    return run(cwd, *args, **kw).stdout.decode("utf-8", "replace").strip()


@dataclass(frozen=True)
class RepoPaths:
    """Where things are: the worktree, its git dir, and the dir shared by all worktrees."""
    worktree: Path
    git_dir: Path
    common_dir: Path
    object_format: str = "sha1"

    @cached_property
    def local(self) -> Path:
        """Per-worktree private state (temp files, the temporary index)."""
        return self.git_dir / "handoff"

    @cached_property
    def shared(self) -> Path:
        """State shared by every worktree of the repo (lock, clock, caches, cursors)."""
        return self.common_dir / "handoff"


def discover(start: str | os.PathLike[str] | None = None) -> RepoPaths:
    cwd = Path(start or os.getcwd())
    if not cwd.exists():
        raise HandoffError("not_a_repo", f"{cwd} does not exist", hint="pass --repo PATH to a git repository")
    found = _discover_fast(cwd)
    if found is not None:
        return found
    proc = run(cwd, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir",
               "--show-object-format", check=False)
    if proc.returncode != 0:
        raise HandoffError("not_a_repo", f"{cwd} is not inside a git work tree",
                           hint="run `git init` first, or pass --repo PATH")
    lines = proc.stdout.decode().splitlines()
    top, git_dir, common = lines[:3]
    common_path = Path(common)
    if not common_path.is_absolute():
        common_path = (cwd / common_path).resolve()
    return RepoPaths(Path(top), Path(git_dir), common_path, lines[3] if len(lines) > 3 else "sha1")


_DISCOVERY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES",
                  "GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")


def _discover_fast(cwd: Path) -> RepoPaths | None:
    """What ``git rev-parse --show-toplevel --absolute-git-dir --git-common-dir`` says, read from disk.

    Every command starts here, and a git process costs a few milliseconds of a ~100 ms command.  Only
    the plain layouts are read: a ``.git`` directory, or a ``.git`` file of a linked worktree
    (``gitdir:`` + ``commondir``), in a non-bare repo with SHA-1 objects, owned by us, with no git
    variable that changes discovery.  Anything else returns None and git is asked.
    """
    if any(k in os.environ for k in _DISCOVERY_ENV):
        return None
    try:
        here = cwd.resolve()
        if ".git" in here.parts:
            return None  # inside a git dir: git itself says what that means
        uid = os.getuid()
        for top in (here, *here.parents):
            dot = top / ".git"
            try:
                st = dot.lstat()
            except FileNotFoundError:
                continue
            if dot.is_symlink():
                return None
            if dot.is_dir():
                git_dir = dot
            else:
                text = dot.read_text().strip()
                if not text.startswith("gitdir: "):
                    return None
                git_dir = Path(text[8:])
                if not git_dir.is_absolute():
                    git_dir = (top / git_dir)
                git_dir = git_dir.resolve()
            if not (git_dir / "HEAD").is_file() or st.st_uid != uid or top.stat().st_uid != uid:
                return None
            common = git_dir
            commondir = git_dir / "commondir"
            if commondir.exists():
                c = Path(commondir.read_text().strip())
                common = (c if c.is_absolute() else git_dir / c).resolve()
            config = (common / "config").read_text()
            lowered = config.lower()
            if "bare = true" in lowered or "objectformat" in lowered or "worktree" in lowered \
                    or "include" in lowered or common.stat().st_uid != uid:
                return None
            return RepoPaths(top, git_dir, common, "sha1")
    except (OSError, ValueError):
        return None
    return None


def head_state(paths: RepoPaths) -> tuple[str | None, str | None, str | None]:
    """(symbolic ref or None if detached, HEAD commit or None if unborn, reason we must not commit)."""
    gd = paths.git_dir
    for marker, what in (("MERGE_HEAD", "a merge"), ("CHERRY_PICK_HEAD", "a cherry-pick"),
                         ("REVERT_HEAD", "a revert"), ("rebase-merge", "a rebase"),
                         ("rebase-apply", "a rebase or am"), ("BISECT_LOG", "a bisect")):
        if (gd / marker).exists():
            return None, None, f"{what} is in progress"
    ref = symbolic_head(paths)
    head = loose_ref(paths, ref) if ref else None
    if head is None:
        proc = run(paths.worktree, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
        head = proc.stdout.decode().strip() if proc.returncode == 0 else None
    if ref is None:
        return None, head, "HEAD is detached"
    return ref, head, None


def loose_ref(paths: RepoPaths, ref: str) -> str | None:
    """A branch's commit read from its loose ref file (None: packed, another backend, or unborn: ask git).

    Only a shortcut before a compare-and-swap ``update-ref``: a stale value makes that fail and retry.
    """
    try:
        text = (paths.common_dir / ref).read_text().strip()
    except (OSError, ValueError):
        return None
    if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text):
        return text
    return None


def symbolic_head(paths: RepoPaths) -> str | None:
    """The branch HEAD points to, or None when detached (read from the HEAD file when it is plain)."""
    try:
        text = (paths.git_dir / "HEAD").read_text().strip()
    except OSError:
        text = ""
    if text.startswith("ref: refs/heads/") and not text.endswith("/.invalid"):
        return text[5:]
    if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text):
        return None
    proc = run(paths.worktree, "symbolic-ref", "-q", "HEAD", check=False)  # reftable and other backends
    return proc.stdout.decode().strip() if proc.returncode == 0 else None
