"""``handoff hooks install|uninstall``: a plain git pre-commit hook running ``handoff verify --staged``.

An existing pre-commit hook that is not ours is kept: it is renamed to
``pre-commit.handoff-chained`` and our hook runs it first (same arguments,
same stdin), so both checks apply.  A hook tracked by git (``core.hooksPath``
pointing into the work tree, hooks committed with the project) is never
renamed, rewritten or removed: install and uninstall refuse (``hook_tracked``)
and say how to add the check by hand; a new hook made in the work tree is
reported as untracked.  The hook does nothing in a repository
without ``.handoffs/`` and finds ``handoff`` on PATH or through the Python
that installed it.  (pre-commit framework users add the hook from
``.pre-commit-hooks.yaml`` instead.)
"""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.store import files as store

MARKER = "# handoff pre-commit hook"
CHAINED = "pre-commit.handoff-chained"

TEMPLATE = """#!/bin/sh
{marker} (installed by `handoff hooks install`; remove with `handoff hooks uninstall`)
hook_dir=$(dirname "$0")
if [ -x "$hook_dir/{chained}" ]; then
    "$hook_dir/{chained}" "$@" || exit $?
fi
top=$(git rev-parse --show-toplevel 2>/dev/null) || exit 0
[ -d "$top/.handoffs" ] || exit 0
if {python} -c "import handoff" >/dev/null 2>&1; then
    exec {python} -m handoff verify --staged
elif command -v handoff >/dev/null 2>&1; then
    exec handoff verify --staged
fi
echo "handoff pre-commit hook: handoff is not installed here; skipping verify" >&2
exit 0
"""


def hooks_dir(cwd: Path) -> Path:
    path = Path(gitcmd.out(cwd, "rev-parse", "--git-path", "hooks"))
    return path if path.is_absolute() else (cwd / path)


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except OSError:
        return False


def _in_worktree(worktree: Path, path: Path) -> str | None:
    """``path`` relative to the work tree, or None when it lies outside (``.git/hooks``, an absolute hooksPath).

    The hook itself is not resolved: a ``.git/hooks/pre-commit`` symlink to a tracked script is chained by
    renaming the link, which leaves the script alone."""
    try:
        rel = (path.parent.resolve() / path.name).relative_to(worktree.resolve())
    except ValueError:
        return None
    return None if rel.parts[:1] == (".git",) else rel.as_posix()


def _refuse_tracked(worktree: Path, path: Path, verb: str) -> None:
    """Refuse to ``verb`` a hook file git tracks: it belongs to the project, not to this clone."""
    rel = _in_worktree(worktree, path)
    if rel is None or not gitcmd.out(worktree, "ls-files", "-z", "--", rel):
        return
    raise HandoffError("hook_tracked", f"{rel} is tracked by git (core.hooksPath points into the work tree): "
                                       f"handoff will not {verb} a committed hook; nothing was changed",
                       hint=f"add `handoff verify --staged` to {rel} yourself and commit it, or use the "
                            "handoff-verify hook of the pre-commit framework (.pre-commit-hooks.yaml)")


def install(repo: str | None) -> dict:
    paths = gitcmd.discover(repo)
    d = hooks_dir(paths.worktree)
    hook, chained = d / "pre-commit", d / CHAINED
    result = {"hook": str(hook), "chained": None, "updated": False}
    text = TEMPLATE.format(marker=MARKER, chained=CHAINED, python=shlex.quote(sys.executable))
    if hook.exists() or hook.is_symlink():
        try:
            same = hook.read_text(errors="replace") == text
        except OSError:
            same = False
        if same and os.access(hook, os.X_OK):
            result.update(updated=True, chained=str(chained) if chained.exists() else None)
            return result  # already this very hook: nothing to write (a tracked copy stays untouched)
        _refuse_tracked(paths.worktree, hook, "rename or rewrite")
        if _ours(hook):
            result["updated"] = True
        elif chained.exists():
            raise HandoffError("hook_exists", f"{hook} exists and {chained.name} is taken",
                               hint="merge the two hooks by hand, then run `handoff hooks install` again")
        else:
            os.replace(hook, chained)
    if chained.exists():
        result["chained"] = str(chained)
    rel = _in_worktree(paths.worktree, hook)
    if rel is not None and not result["updated"]:
        result["note"] = (f"{rel} is in the work tree (core.hooksPath): it shows as untracked in `git status`; "
                          "commit it to share it, or list it in .git/info/exclude")
    d.mkdir(parents=True, exist_ok=True)
    # mkstemp: a fresh random name, O_EXCL | O_NOFOLLOW: a file or link someone committed beside the hook
    # is never written through (nor removed)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".pre-commit.handoff.", suffix=".tmp")
    try:
        with open(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, hook)
    except BaseException:
        store.discard([Path(tmp)])
        raise
    return result


def uninstall(repo: str | None) -> dict:
    paths = gitcmd.discover(repo)
    d = hooks_dir(paths.worktree)
    hook, chained = d / "pre-commit", d / CHAINED
    result = {"hook": str(hook), "removed": False, "restored": None}
    if _ours(hook):
        _refuse_tracked(paths.worktree, hook, "remove")
        if chained.exists():
            _refuse_tracked(paths.worktree, chained, "move")
        hook.unlink()
        result["removed"] = True
        if chained.exists():
            os.replace(chained, hook)
            result["restored"] = str(hook)
    return result
