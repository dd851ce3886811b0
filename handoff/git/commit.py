"""Committing event files: build the tree (``tree``'s flat path, or a private index), write the commit,
move the branch with compare-and-swap, and keep the user's real index in step, never touching their
staged changes.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from handoff.errors import HandoffError
from handoff.git import tree as gittree
from handoff.git.cmd import GitError, RepoPaths, clean_env, loose_ref, out, run, symbolic_head


class CommitSkipped(Exception):
    """The event files are published but could not be committed; the next write commits them."""


_IDENTITY_HINTS = ("Please tell me who you are", "unable to auto-detect email address", "empty ident name",
                   "no email was given")


def _explain(exc: GitError) -> HandoffError:
    """Turn the git failures a user can fix into errors that name the cause."""
    text = exc.stderr
    if any(h in text for h in _IDENTITY_HINTS):
        return HandoffError("no_git_identity", "git has no identity to commit with (user.name / user.email unset)",
                            hint='run `git config user.name "Your Name"` and `git config user.email you@example.com`, '
                                 "or write with --no-commit")
    if "No space left on device" in text or "Out of diskspace" in text:
        return HandoffError("disk_full", f"no space left on device ({exc.message})",
                            hint="free some disk space and run the command again; nothing was written")
    if "Read-only file system" in text or "Permission denied" in text:
        return HandoffError("permission_denied", f"git cannot write to the repository: {exc.message}",
                            hint="check the permissions of the .git directory")
    return exc


def index_lock(paths: RepoPaths) -> Path:
    return paths.git_dir / "index.lock"


def wait_index_unlocked(paths: RepoPaths, seconds: float = 3.0) -> None:
    """Refuse, before anything is written, while another git process holds this worktree's index lock."""
    import time

    lock = index_lock(paths)
    deadline = time.monotonic() + seconds
    while lock.exists():
        if time.monotonic() > deadline:
            raise HandoffError("index_locked", f"{lock} exists: another git process is using the index "
                                               "(or one crashed); nothing was written",
                               hint="wait for it to finish and run the command again; if no git process is "
                                    f"running, remove {lock}")
        time.sleep(0.02)


def hash_files(paths: RepoPaths, files: Sequence[str | Path]) -> list[str]:
    """Write blobs for ``files`` (absolute, or relative to the worktree) byte for byte: no filters."""
    if not files:
        return []
    try:
        blobs = out(paths.worktree, "hash-object", "-w", "--no-filters", "--stdin-paths",
                    input="\n".join(str(f) for f in files).encode()).split()
    except GitError as exc:
        raise _explain(exc) from None
    if len(blobs) != len(files):
        raise HandoffError("git_failed", "git hash-object returned the wrong number of objects",
                           hint="run `git fsck` on the repository")
    return blobs


def sign_commits(paths: RepoPaths) -> bool:
    """``commit.gpgSign``: ``commit-tree`` ignores it, so we pass ``-S`` ourselves.

    Asking git costs a process on every commit; when no config file git reads mentions ``gpgsign`` (and
    none includes another file, and no ``GIT_CONFIG*`` variable is set) the answer is no without asking.
    """
    if not _config_may_mention(paths, b"gpgsign"):
        return False
    return out(paths.worktree, "config", "--type=bool", "--default=false", "commit.gpgSign") == "true"


def _config_may_mention(paths: RepoPaths, word: bytes) -> bool:
    if any(k.startswith("GIT_CONFIG") for k in os.environ):
        return True
    home = Path(os.environ.get("HOME") or "~").expanduser()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    for f in (paths.common_dir / "config", paths.git_dir / "config.worktree", home / ".gitconfig",
              xdg / "git" / "config", Path("/etc/gitconfig"), Path("/usr/local/etc/gitconfig")):
        try:
            text = f.read_bytes().lower()
        except FileNotFoundError:
            continue
        except OSError:
            return True
        if word in text or b"include" in text:
            return True
    return False


def _head_fast(paths: RepoPaths) -> tuple[str | None, str | None]:
    """``_head`` without a git process when HEAD is our own last commit (its tree is in gittree's cache)."""
    ref = symbolic_head(paths)
    head = loose_ref(paths, ref) if ref else None
    if head is not None:
        tree = gittree.cached_root(paths, head)
        if tree is not None:
            return head, tree
    return _head(paths)


def _head(paths: RepoPaths) -> tuple[str | None, str | None]:
    proc = run(paths.worktree, "rev-parse", "HEAD^{commit}", "HEAD^{tree}", check=False)
    lines = proc.stdout.decode().split()
    if proc.returncode != 0 or len(lines) != 2:
        return None, None  # unborn branch
    return lines[0], lines[1]


_COMMIT_PATIENCE_S = 20.0  # how long a write keeps retrying when HEAD keeps moving under it


def commit_entries(paths: RepoPaths, entries: list[tuple[str, str]], message: str,
                   publish: Callable[[], None] = lambda: None, removed: Sequence[str] = ()) -> str | None:
    """Commit exactly ``entries`` (worktree-relative path, blob id) on top of HEAD, and the removal of
    ``removed`` (paths; ``publish`` unlinks them from the work tree), in one commit.

    Order matters, for crashes and for people committing at the same time:
    1. the commit object is made first (identity, disk and object errors
       happen here, before ``publish`` makes any file visible);
    2. ``publish()`` links the files into the work tree;
    3. our paths are added to the real index *before* the branch moves, so a
       person's ``git commit`` racing with us commits a tree that holds them
       instead of one that silently drops them;
    4. ``update-ref HEAD new old`` is a compare-and-swap; when HEAD moved we
       rebuild on the new HEAD, add our paths to the real index again (the
       commit that moved HEAD may have rewritten the index without them) and
       try again, backing off.
    Errors in 1 propagate (nothing was written); after 2 they become
    ``CommitSkipped`` (the files are there; the next write commits them).
    The user's staged and unstaged work is never touched: the tree is built in
    a private index.  The caller holds the writer lock.  Returns the commit,
    or the current HEAD when it already held every entry.
    """
    import random
    import time

    wt = paths.worktree
    info = ("".join(f"100644 {b}\t{p}\0" for p, b in entries)
            + "".join(f"0 {'0' * 40}\t{p}\0" for p in removed)).encode()  # (mode 0: take the path out)
    sign = sign_commits(paths)
    # Rewrite only the trees on our paths (gittree.py): flat cost.  HANDOFF_FLAT_COMMITS=0 uses the private index.
    flat = paths.object_format == "sha1" and os.environ.get("HANDOFF_FLAT_COMMITS", "1") != "0"
    built: dict = {}
    tmp_index = paths.local / f"index.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
    tmp_index.parent.mkdir(parents=True, exist_ok=True)
    env = clean_env({"GIT_INDEX_FILE": str(tmp_index)})

    def make(head: str | None, head_tree: str | None) -> str | None:
        if flat:
                tree, built["trees"] = gittree.tree_with(paths, head, entries, removed)
        else:
            run(wt, "read-tree", *([head] if head else ["--empty"]), env=env)
            run(wt, "update-index", "-z", "--index-info", input=info, env=env)
            tree = out(wt, "write-tree", env=env)
        if tree == head_tree:
            return None  # already committed (a crash after the commit, or a person's commit took them)
        args = ["commit-tree", tree, "-m", message] + (["-p", head] if head else []) + (["-S"] if sign else [])
        return out(wt, *args)

    try:
        head, head_tree = _head_fast(paths) if flat else _head(paths)
        try:
            commit = make(head, head_tree)
        except GitError as exc:  # identity, disk, permissions: refused before anything is visible
            raise _explain(exc) from None
        publish()
        try:
            problem = _sync_real_index(paths, info)
            if problem:
                raise CommitSkipped(problem)
            last = ""
            locked = 0
            # Retry for a while rather than a number of times: on a loaded machine a person (or a tool)
            # committing in a loop can win many compare-and-swaps in a row.
            deadline = time.monotonic() + _COMMIT_PATIENCE_S
            attempt = 0
            while attempt < 40 or time.monotonic() < deadline:
                attempt += 1
                if commit is None:
                    return head
                proc = run(wt, "update-ref", "-m", message, "HEAD", commit, head or "0" * 40, check=False)
                if proc.returncode == 0:
                    if flat:
                                        gittree.remember(paths, commit, built["trees"])
                    return commit
                last = proc.stderr.decode("utf-8", "replace").strip()
                if "File exists" in last:  # another git process holds the branch's lock: git holds it briefly
                    locked += 1
                    if locked > 20:
                        break
                    time.sleep(0.05)
                elif "but expected" not in last and "is at" not in last:
                    raise CommitSkipped(f"git update-ref failed: {last.splitlines()[0] if last else proc.returncode}")
                else:
                    time.sleep(min(0.2, 0.002 * attempt) * (0.5 + random.random()))  # HEAD moved: back off
                new_head, new_tree = _head(paths)
                if new_head != head:
                    head, head_tree = new_head, new_tree
                    commit = make(head, head_tree)
                    # Whoever moved HEAD may have written the real index from a copy read before our entries
                    # were added (a plain `git commit` reads the index before locking it).  Add them again, or
                    # the next `git commit` would drop them from the branch.
                    problem = _sync_real_index(paths, info)
                    if problem:
                        raise CommitSkipped(problem)
            first = last.splitlines()[0] if last else ""
            raise CommitSkipped(f"HEAD kept moving or stayed locked while committing ({first})")
        except HandoffError as exc:
            raise CommitSkipped(exc.message) from None
    finally:
        for p in (tmp_index, tmp_index.with_name(tmp_index.name + ".lock")):
            try:
                p.unlink()
            except OSError:
                pass


def commit_paths(paths: RepoPaths, rel_paths: list[str], message: str) -> str | None:
    """Commit files already in the work tree (``init``'s template files).  Raises on any failure."""
    try:
        return commit_entries(paths, list(zip(rel_paths, hash_files(paths, rel_paths))), message)
    except CommitSkipped as exc:
        raise HandoffError("commit_failed", f"could not commit {', '.join(rel_paths)}: {exc}",
                           hint="commit them by hand with git, or run the command again") from None


def sweep_private(paths: RepoPaths) -> None:
    """Remove temporary index files a killed writer left behind.  Call only under the writer lock."""
    try:
        names = os.listdir(paths.local)
    except OSError:
        return
    for name in names:
        if name.startswith("index.") and (name.endswith(".tmp") or name.endswith(".tmp.lock")):
            try:
                os.unlink(paths.local / name)
            except OSError:
                pass


def _sync_real_index(paths: RepoPaths, info: bytes) -> str | None:
    """Add our entries to the worktree's real index, waiting while another git process holds it.

    Returns None on success, else why it could not be done.
    """
    import random
    import time

    for attempt in range(40):
        proc = run(paths.worktree, "update-index", "-z", "--add", "--index-info", input=info, check=False)
        if proc.returncode == 0:
            return None
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "index.lock" not in err or "File exists" not in err:
            return _explain(GitError(["update-index", "(real index)"], proc.returncode, err)).message
        time.sleep(0.01 + random.random() * 0.01 * (attempt + 1))
    return f"the index is locked ({index_lock(paths)} exists)"
