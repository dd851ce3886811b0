"""``sync``'s push and fetch, through GitPython, so git's transfer progress reaches the caller.

GitPython runs the same ``git push --porcelain`` / ``git fetch`` processes plumbing would; what it
adds is the parsing: its ``RemoteProgress`` turns git's ``--progress`` lines into callbacks, and
``PushInfo`` flags say what happened to the pushed ref.  It is imported inside these functions
only (~45 ms), and only ``handoff sync`` calls them: no other command imports GitPython.

Traps handled here (docs/DESIGN.md, GitPython): its processes inherit ``os.environ`` (so the git
variables a hook sets are taken out for the call, as ``cmd.clean_env`` does for plumbing); a
rejected push returns flags rather than raising; a failed fetch raises ``GitCommandError``;
``fetch`` reads ``FETCH_HEAD`` afterwards and logs warnings through ``logging``; and every ``Repo``
is closed, so no ``cat-file`` process outlives the call.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from handoff.git import cmd as gitcmd

if TYPE_CHECKING:
    import git

Progress = Callable[[dict], None]

# GitPython's op codes (RemoteProgress.COUNTING ...) by name; "unpacking" and "enumerating" are lines
# it does not parse (it hands them to ``line_dropped``), read here with its own pattern.
_STAGES = (("COUNTING", "counting"), ("COMPRESSING", "compressing"), ("WRITING", "writing"),
           ("RECEIVING", "receiving"), ("RESOLVING", "resolving"), ("FINDING_SOURCES", "finding_sources"),
           ("CHECKING_OUT", "checking_out"))
_EXTRA = {"Unpacking objects": "unpacking", "Enumerating objects": "enumerating"}
_LINE = re.compile(r"(?:remote: )?([\w\s]+):\s+(?:(\d+)% \((\d+)/(\d+)\)|(\d+))(.*)")

PUSHED, UP_TO_DATE, REJECTED = "pushed", "up to date", "rejected"


def progress_event(op: str, stage: str, cur: float | None, total: float | None, message: str,
                   done: bool) -> dict:
    """One progress report: {"op": "push"|"fetch", "stage", "current", "total", "percent", "done", "message"}."""
    current = int(cur) if cur is not None else None
    whole = int(total) if total else None
    percent = int(100 * current / whole) if current is not None and whole else None
    return {"op": op, "stage": stage, "current": current, "total": whole, "percent": percent, "done": done,
            "message": message.strip().strip(",").strip()}


def _reporter(op: str, sink: Progress | None) -> Any:
    """A ``git.RemoteProgress`` passing each update to ``sink`` as a ``progress_event`` (None: no progress)."""
    if sink is None:
        return None
    import git
    names = [(getattr(git.RemoteProgress, code), name) for code, name in _STAGES]

    class Reporter(git.RemoteProgress):
        def update(self, op_code, cur_count, max_count=None, message=""):
            stage = next((name for code, name in names if op_code & code), "working")
            sink(progress_event(op, stage, cur_count, max_count, message or "", bool(op_code & self.END)))

        def line_dropped(self, line):
            m = _LINE.match(line)
            if m and m.group(1) in _EXTRA:
                _pct, cur, total, absolute, rest = m.groups()[1:]
                rest = rest.strip()
                done = rest.endswith(self.DONE_TOKEN)
                sink(progress_event(op, _EXTRA[m.group(1)], float(cur or absolute), float(total) if total else None,
                                    rest[:-len(self.DONE_TOKEN)] if done else rest, done))

    return Reporter()


@contextlib.contextmanager
def _repo(paths: gitcmd.RepoPaths, env: dict) -> Iterator[git.Repo]:
    """A GitPython Repo on the work tree, its processes run with ``env``'s values and without the
    variables ``cmd.clean_env`` drops (GitPython starts from ``os.environ``; a CLI process is single-threaded
    here, so they are taken out of it for the call and put back)."""
    import git
    log = logging.getLogger("git")
    if not log.handlers:  # its warnings ("Error lines received while fetching") are not ours to print
        log.addHandler(logging.NullHandler())
    saved = {k: os.environ.pop(k) for k in gitcmd.SCRUB if k in os.environ}
    try:
        with git.Repo(paths.worktree) as repo, repo.git.custom_environment(**env):
            yield repo
    finally:
        os.environ.update(saved)


def _failure(args: list[str], exc: Exception) -> gitcmd.GitError:
    import git
    if isinstance(exc, git.GitCommandError):
        status = exc.status if isinstance(exc.status, int) else 1
        return gitcmd.GitError(args, status, str(exc.stderr or "").strip().removeprefix("stderr: ").strip("'"))
    return gitcmd.GitError(args, 1, str(exc))


def push(paths: gitcmd.RepoPaths, remote: str, ref: str, branch: str, *, set_upstream: bool, env: dict,
         progress: Progress | None = None) -> str:
    """Push ``ref`` to the remote's ``branch``: PUSHED, UP_TO_DATE, or REJECTED (the remote branch moved:
    fetch, integrate, try again).  Any other refusal raises ``GitError`` (reason ``git_failed``)."""
    import git
    args = ["push", "--porcelain", remote, f"{ref}:refs/heads/{branch}"]
    with _repo(paths, env) as repo:
        try:
            infos = repo.remote(remote).push(f"{ref}:refs/heads/{branch}", progress=_reporter("push", progress),
                                             set_upstream=set_upstream)
        except git.GitCommandError as exc:  # nothing pushed and no ref reported (unreachable, refused)
            raise _failure(args, exc) from None
        mine = [i for i in infos if i.remote_ref_string == f"refs/heads/{branch}"]
        if not mine:
            if infos.error is not None:
                raise _failure(args, infos.error)
            raise gitcmd.GitError(args, 1, f"git reported nothing about refs/heads/{branch}")
        info = mine[0]
        if info.flags & git.PushInfo.REJECTED or (info.flags & git.PushInfo.REMOTE_REJECTED
                                                  and "failed to update ref" in info.summary):
            return REJECTED  # non-fast-forward, fetch first, stale info; or lost a race on the remote
        if info.flags & (git.PushInfo.REMOTE_REJECTED | git.PushInfo.REMOTE_FAILURE | git.PushInfo.ERROR):
            raise gitcmd.GitError(args, 1, info.summary.strip())
        if infos.error is not None:
            raise _failure(args, infos.error)
        return UP_TO_DATE if info.flags & git.PushInfo.UP_TO_DATE else PUSHED


def fetch(paths: gitcmd.RepoPaths, remote: str, *, env: dict, progress: Progress | None = None) -> None:
    """``git fetch --prune remote``; a failure raises ``GitError`` (reason ``git_failed``)."""
    import git
    with _repo(paths, env) as repo:
        r = repo.remote(remote)
        reader = r.config_reader
        try:
            has_refspec = reader.get_value("fetch", default="") != ""
        finally:
            reader.release()
        try:
            # (no fetch refspec: what `git fetch remote` does then, fetch its HEAD into FETCH_HEAD only)
            r.fetch(None if has_refspec else "HEAD", progress=_reporter("fetch", progress), prune=True)
        except git.GitCommandError as exc:
            raise _failure(["fetch", "--prune", remote], exc) from None
        except OSError:
            pass  # git succeeded (a failure raises first); GitPython could not read FETCH_HEAD after it
