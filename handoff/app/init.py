"""``handoff init``: copy the template into .handoffs/ without overwriting anything."""
from __future__ import annotations

import re
from pathlib import Path

from handoff.core import ids
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.git import commit as gitcommit
from handoff.store import files as store

TEMPLATE_FILES = ("config.yaml", "README.md", ".gitattributes", ".gitignore")


def template_dir() -> Path:
    package = Path(__file__).resolve().parent.parent  # handoff/
    for cand in (package / "template", package.parent / ".handoffs-template"):
        if (cand / "config.yaml").exists():
            return cand
    raise HandoffError("internal", "the .handoffs template is missing from the installation",
                       hint="reinstall handoff")


def init_workspace(repo: str | None, workspace: str | None, *, commit: bool | None) -> dict:
    paths = gitcmd.discover(repo)
    root = paths.worktree / ".handoffs"
    if workspace is None:
        workspace = re.sub(r"[^A-Za-z0-9_-]+", "-", paths.worktree.name).strip("-") or "default"
    ids.check_id("workspace", workspace)
    created, kept = [], []
    src = template_dir()
    store.refuse_symlinks(paths.worktree, ".handoffs/events")  # never follows a symlinked .handoffs
    for d in (root, root / "events"):
        if d.exists() and not d.is_dir():
            raise HandoffError("not_a_directory", f"{d.relative_to(paths.worktree)} is a file, not a directory",
                               hint="move that file away (handoff keeps its events in the .handoffs/ folder), "
                                    "then run `handoff init` again")
    try:
        store.refuse_symlinks(paths.worktree, ".handoffs/events", create=True)
    except OSError as exc:
        raise HandoffError("not_a_directory", f"cannot create .handoffs/events: {exc.strerror or exc}",
                           hint="check that .handoffs/ is a writable folder, then run `handoff init` again") from None
    for name in TEMPLATE_FILES:
        dest = root / name
        store.refuse_symlinks(paths.worktree, f".handoffs/{name}")
        if dest.exists():
            kept.append(f".handoffs/{name}")
            continue
        data = (src / name).read_text()
        if name == "config.yaml":
            data = data.replace("{workspace_id}", workspace)
        store.atomic_write_local(dest, data.encode())
        created.append(f".handoffs/{name}")
    from handoff.core.yaml.codec import CodecError, load
    try:
        cfg = load((root / "config.yaml").read_bytes())
    except (OSError, CodecError) as exc:
        raise HandoffError("malformed", f".handoffs/config.yaml cannot be read: {exc}",
                           hint="fix or remove .handoffs/config.yaml, then run `handoff init` again") from None
    result = {"workspace_id": cfg.get("workspace_id", workspace), "root": str(root), "created": created,
              "kept": kept, "commit": None}
    do_commit = commit if commit is not None else str(cfg.get("commit", "auto")).lower() not in ("off", "false")
    if created and do_commit:
        _ref, _head, why = gitcmd.head_state(paths)
        if why:
            result["commit_skipped"] = why
        else:
            with store.file_lock(paths.shared / "lock"):
                result["commit"] = gitcommit.commit_paths(paths, created, "handoff: init workspace "
                                                       f"{result['workspace_id']}")
    return result
