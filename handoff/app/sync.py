"""``handoff sync``: push this branch, fetch everyone's, through an ordinary git remote.

Push first.  When the remote branch moved (another clone pushed to the same
branch), fetch and integrate it only when that cannot touch the user's
uncommitted work: no staged or unstaged change to a tracked file, no merge
or rebase in progress.  Otherwise stop and say what to do.  Integrating
never rewrites a commit that is not handoff's own: by default (``rebase``)
the unpushed commits are rebased only when every one of them is a handoff
commit (``own_commit``); if any is the user's (their work, a merge of
theirs) the remote branch is merged instead.  ``sync.integrate: merge`` in
the config (or ``--integrate merge``) always merges.  Then fetch, so
the remote-tracking refs hold every branch's events; reads union them with
the work tree (see ``remotes``).  Nothing is ever merged across branches.

The push and the fetch go through GitPython (``git.transfer``), which reports git's transfer
progress to ``progress`` when it is given; everything else here is plumbing through ``git.cmd``.
"""
from __future__ import annotations

from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.git import transfer
from handoff.git.transfer import Progress
from handoff.store import files as store

PUSH_ATTEMPTS = 3
_QUIET = {"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"}


def _env() -> dict:
    return gitcmd.clean_env(_QUIET)


def sync(repo: str | None, *, remote: str = "origin", push: bool = True, integrate: str | None = None,
         config: dict | None = None, progress: Progress | None = None) -> dict:
    """Push, then fetch; ``progress`` (optional) receives each of git's transfer progress reports
    (``transfer.progress_event``: op, stage, current, total, percent, done, message)."""
    paths = gitcmd.discover(repo)
    cwd = paths.worktree
    if gitcmd.run(cwd, "remote", "get-url", remote, check=False).returncode != 0:
        raise HandoffError("not_found", f"no git remote named {remote!r}",
                           hint=f"add one: git remote add {remote} URL (or pass --remote NAME)")
    config = config or {}
    method = integrate or str((config.get("sync") or {}).get("integrate", "rebase") if isinstance(
        config.get("sync"), dict) else "rebase")
    if method not in ("rebase", "merge"):
        raise HandoffError("invalid_argument", f"sync.integrate must be rebase or merge, not {method!r}")
    result = {"remote": remote, "branch": None, "pushed": False, "push": None, "integrated": None, "fetched": False}
    ref, head, why = gitcmd.head_state(paths)
    if not push:
        result["push"] = "skipped (--no-push)"
    elif why or not ref or not head:
        result["push"] = f"skipped: {why or 'no commit yet'}"
    else:
        branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
        result["branch"] = branch
        _push_branch(paths, remote, ref, branch, method, result, progress)
    _fetch(paths, remote, progress)
    result["fetched"] = True
    return result


def _push_branch(paths: gitcmd.RepoPaths, remote: str, ref: str, branch: str, method: str, result: dict,
                 progress: Progress | None) -> None:
    cwd = paths.worktree
    upstream = gitcmd.run(cwd, "config", f"branch.{branch}.remote", check=False).returncode == 0
    for _attempt in range(PUSH_ATTEMPTS):
        outcome = transfer.push(paths, remote, ref, branch, set_upstream=not upstream, env=_transfer_env(),
                                progress=progress)
        if outcome != transfer.REJECTED:
            result["pushed"] = True
            result["push"] = outcome  # "pushed" or "up to date"
            return
        _fetch(paths, remote, progress)
        result["integrated"], note = _integrate(paths, f"refs/remotes/{remote}/{branch}", method)
        if note:
            result["integrated_note"] = note
    raise HandoffError("sync_failed", f"{remote}/{branch} kept moving: pushed nothing after {PUSH_ATTEMPTS} tries",
                       hint="run `handoff sync` again")


def _transfer_env() -> dict:
    """What GitPython's processes get on top of its own environment (it sets LC_ALL=C itself)."""
    return {"GIT_OPTIONAL_LOCKS": "0", **_QUIET}


def _fetch(paths: gitcmd.RepoPaths, remote: str, progress: Progress | None) -> None:
    transfer.fetch(paths, remote, env=_transfer_env(), progress=progress)


def own_commit(parents: list[str], subject: str, changes: list[tuple[str, str]]) -> bool:
    """A commit handoff made (so ``sync`` may rebase it): one parent, a ``handoff:`` subject, and only
    files added under ``.handoffs/`` (``changes``: (status letter, path)).  Anything else is the user's."""
    return (len(parents) == 1 and subject.startswith("handoff:") and bool(changes)
            and all(st == "A" and path.startswith(".handoffs/") for st, path in changes))


def _unpushed(cwd, upstream: str) -> list[tuple[list[str], str, list[tuple[str, str]]]]:
    """(parents, subject, changes) of every commit on HEAD that ``upstream`` lacks, in one ``git log``."""
    text = gitcmd.run(cwd, "log", "--no-color", "--format=%x01%P%x02%s", "--name-status", "--no-renames", "-z",
                      f"{upstream}..HEAD").stdout.decode("utf-8", "surrogateescape")
    out = []
    for chunk in text.split("\x01")[1:]:  # "\x01<parents>\x02<subject>\0" then "\n<status>\0<path>\0"...
        head, _, rest = chunk.partition("\x02")
        subject, _, names = rest.partition("\0")
        fields = names.lstrip("\n").split("\0")[:-1]
        out.append((head.split(), subject, list(zip(fields[0::2], fields[1::2]))))
    return out


def _integrate(paths: gitcmd.RepoPaths, upstream: str, method: str) -> tuple[str, str | None]:
    """Bring ``upstream`` into the current branch, only where no uncommitted work can be touched.

    Returns the method used, and why it is not the one asked for (a rebase would rewrite the user's commits).
    """
    cwd = paths.worktree
    dirty = gitcmd.run(cwd, "status", "--porcelain", "-z", "--untracked-files=no").stdout
    _ref, _head, why = gitcmd.head_state(paths)
    if why or dirty:
        reason = why or "you have uncommitted changes to tracked files"
        raise HandoffError("sync_blocked", f"the remote branch has commits this one lacks, and {reason}: "
                                           "not integrating them automatically",
                           hint="commit or stash your changes, then run `handoff sync` again (it integrates the "
                                "remote branch without rewriting your commits)")
    note = None
    with store.file_lock(paths.shared / "lock"):  # no handoff writer commits while HEAD moves
        if method == "rebase":
            theirs = [c for c in _unpushed(cwd, upstream) if not own_commit(*c)]
            if theirs:
                method = "merge"
                note = (f"merged instead of rebasing: {len(theirs)} unpushed commit(s) here are not handoff's "
                        "(your work or your merges), and sync never rewrites them")
        if method == "rebase":
            proc = gitcmd.run(cwd, "rebase", "--quiet", upstream, env=_env(), check=False)
            abort = ("rebase", "--abort")
        else:
            # --ff: fast-forward when possible, whatever merge.ff (false, only) says in the user's config
            proc = gitcmd.run(cwd, "merge", "--quiet", "--no-edit", "--ff", upstream, env=_env(), check=False)
            abort = ("merge", "--abort")
        if proc.returncode != 0:
            said = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip().splitlines()
            why = said[-1] if said else f"exit {proc.returncode}"
            gitcmd.run(cwd, *abort, env=_env(), check=False)
            raise HandoffError("sync_conflict", f"{method} of {upstream} failed ({why}); nothing was changed",
                               hint=f"integrate by hand (git {method} {upstream.split('/', 2)[-1]}), "
                                    "then run `handoff sync` again")
    return method, note
