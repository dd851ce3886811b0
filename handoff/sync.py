"""``handoff sync``: push this branch, fetch everyone's, through an ordinary git remote.

Push first.  When the remote branch moved (another clone pushed to the same
branch), fetch and integrate it (rebase by default, ``sync.integrate:
merge`` in the config to merge) only when that cannot touch the user's
uncommitted work: no staged or unstaged change to a tracked file, no merge
or rebase in progress.  Otherwise stop and say what to do.  Then fetch, so
the remote-tracking refs hold every branch's events; reads union them with
the work tree (see ``remotes``).  Nothing is ever merged across branches.
"""
from __future__ import annotations

from . import gitcmd, store
from .errors import HandoffError

PUSH_ATTEMPTS = 3
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "stale info", "failed to update ref")


def _env() -> dict:
    return gitcmd.clean_env({"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true",
                             "GIT_MERGE_AUTOEDIT": "no"})


def sync(repo: str | None, *, remote: str = "origin", push: bool = True, integrate: str | None = None,
         config: dict | None = None) -> dict:
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
        _push_branch(paths, remote, branch, method, result)
    _fetch(cwd, remote)
    result["fetched"] = True
    return result


def _push_branch(paths: gitcmd.RepoPaths, remote: str, branch: str, method: str, result: dict) -> None:
    cwd = paths.worktree
    upstream = gitcmd.run(cwd, "config", f"branch.{branch}.remote", check=False).returncode == 0
    for _attempt in range(PUSH_ATTEMPTS):
        args = ["push", "--porcelain"] + ([] if upstream else ["--set-upstream"]) + [remote, f"HEAD:refs/heads/{branch}"]
        proc = gitcmd.run(cwd, *args, env=_env(), check=False)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if proc.returncode == 0:
            result["pushed"] = True
            result["push"] = "up to date" if "[up to date]" in text else "pushed"
            return
        if not any(marker in text for marker in _REJECTED):
            raise gitcmd.GitError(args, proc.returncode, text)
        _fetch(cwd, remote)
        _integrate(paths, f"refs/remotes/{remote}/{branch}", method)
        result["integrated"] = method
    raise HandoffError("sync_failed", f"{remote}/{branch} kept moving: pushed nothing after {PUSH_ATTEMPTS} tries",
                       hint="run `handoff sync` again")


def _fetch(cwd, remote: str) -> None:
    gitcmd.run(cwd, "fetch", "--prune", "--quiet", remote, env=_env())


def _integrate(paths: gitcmd.RepoPaths, upstream: str, method: str) -> None:
    """Bring ``upstream`` into the current branch, only where no uncommitted work can be touched."""
    cwd = paths.worktree
    dirty = gitcmd.run(cwd, "status", "--porcelain", "-z", "--untracked-files=no").stdout
    _ref, _head, why = gitcmd.head_state(paths)
    if why or dirty:
        reason = why or "you have uncommitted changes to tracked files"
        raise HandoffError("sync_blocked", f"the remote branch has commits this one lacks, and {reason}: "
                                           "not integrating them automatically",
                           hint=f"commit or stash your changes, then `git {'pull --rebase' if method == 'rebase' else 'pull'}` "
                                "and run `handoff sync` again")
    with store.file_lock(paths.shared / "lock"):  # no handoff writer commits while HEAD moves
        if method == "rebase":
            proc = gitcmd.run(cwd, "rebase", "--quiet", upstream, env=_env(), check=False)
            abort = ("rebase", "--abort")
        else:
            proc = gitcmd.run(cwd, "merge", "--quiet", "--no-edit", upstream, env=_env(), check=False)
            abort = ("merge", "--abort")
        if proc.returncode != 0:
            gitcmd.run(cwd, *abort, env=_env(), check=False)
            raise HandoffError("sync_conflict", f"{method} onto {upstream} conflicted; nothing was changed",
                               hint=f"integrate by hand (git {method} {upstream.split('/', 2)[-1]}), "
                                    "then run `handoff sync` again")
