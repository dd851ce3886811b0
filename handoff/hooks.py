"""``handoff hooks install|uninstall``: a plain git pre-commit hook running ``handoff verify --staged``.

An existing pre-commit hook that is not ours is kept: it is renamed to
``pre-commit.handoff-chained`` and our hook runs it first (same arguments,
same stdin), so both checks apply.  The hook does nothing in a repository
without ``.handoffs/`` and finds ``handoff`` on PATH or through the Python
that installed it.  (pre-commit framework users add the hook from
``.pre-commit-hooks.yaml`` instead.)
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import gitcmd
from .errors import HandoffError

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


def install(repo: str | None) -> dict:
    paths = gitcmd.discover(repo)
    d = hooks_dir(paths.worktree)
    d.mkdir(parents=True, exist_ok=True)
    hook, chained = d / "pre-commit", d / CHAINED
    result = {"hook": str(hook), "chained": None, "updated": False}
    if hook.exists() or hook.is_symlink():
        if _ours(hook):
            result["updated"] = True
        elif chained.exists():
            raise HandoffError("hook_exists", f"{hook} exists and {chained.name} is taken",
                               hint="merge the two hooks by hand, then run `handoff hooks install` again")
        else:
            os.replace(hook, chained)
    if chained.exists():
        result["chained"] = str(chained)
    text = TEMPLATE.format(marker=MARKER, chained=CHAINED, python=shlex.quote(sys.executable))
    tmp = d / ".pre-commit.handoff.tmp"
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, hook)
    return result


def uninstall(repo: str | None) -> dict:
    paths = gitcmd.discover(repo)
    d = hooks_dir(paths.worktree)
    hook, chained = d / "pre-commit", d / CHAINED
    result = {"hook": str(hook), "removed": False, "restored": None}
    if _ours(hook):
        hook.unlink()
        result["removed"] = True
        if chained.exists():
            os.replace(chained, hook)
            result["restored"] = str(hook)
    return result
