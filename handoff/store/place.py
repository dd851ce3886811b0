"""Where a workspace lives: the repository's paths, the ``.handoffs`` folder and its config.

``Place`` is what the cache, the remote-ref reader and the local state need of a workspace; the app's
``Workspace`` builds on it with reads and writes.
"""
from __future__ import annotations

import os

from handoff.core.config import parse_config
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.store import files as store

HANDOFFS = ".handoffs"


class Place:
    def __init__(self, repo: str | os.PathLike[str] | None = None, *, require_init: bool = True):
        self.paths = gitcmd.discover(repo)
        self.root = self.paths.worktree / HANDOFFS
        self.refuse_symlinks()
        store.refuse_symlinks(self.paths.worktree, f"{HANDOFFS}/config.yaml")
        if require_init and not (self.root / "config.yaml").exists():
            raise HandoffError("not_initialized", f"{self.root} has no config.yaml",
                               hint="run `handoff init` in the repository first")
        self._config: dict | None = None

    # ------------------------------------------------------------- config
    @property
    def config(self) -> dict:
        if self._config is None:
            try:
                data: bytes | None = (self.root / "config.yaml").read_bytes()
            except FileNotFoundError:
                data = None
            self._config = parse_config(data)
        return self._config

    @property
    def workspace_id(self) -> str:
        return str(self.config.get("workspace_id") or "default")

    def commit_default(self) -> bool:
        """Whether writes commit at all (``commit: auto`` or ``batch``)."""
        return self.commit_mode() != "off"

    def commit_mode(self) -> str:
        """``auto`` (each write commits), ``batch`` (writes are committed together, see app/batching.py) or
        ``off``: ``HANDOFF_COMMIT`` when set to one of them, else the config's ``commit``."""
        from handoff.core.config import commit_mode
        return commit_mode(self.config, os.environ.get("HANDOFF_COMMIT"))

    # -------------------------------------------------------------- reads
    def refuse_symlinks(self) -> None:
        """Never read or write through a symlinked ``.handoffs`` or ``events`` (two lstats; deeper links are
        reported by the listing and refused by every write).  Checked again on each read: a long-lived
        process (watcher, MCP server) may see a checkout put one there."""
        store.refuse_symlinks(self.paths.worktree, f"{HANDOFFS}/{store.EVENTS}")
