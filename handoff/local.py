"""Per-machine state that is never committed: acknowledgements and watcher cursors.

Lives under the git common dir, so every worktree of a repo shares it, and
``rm -rf .git/handoff`` only loses convenience, never events.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from . import store

if TYPE_CHECKING:
    from .workspace import Workspace


def _acks_path(ws: "Workspace", session_id: str):
    return ws.paths.shared / "acks" / f"{session_id}.txt"


def read_acks(ws: "Workspace", session_id: str) -> set[str]:
    try:
        return {line.strip() for line in _acks_path(ws, session_id).read_text().splitlines() if line.strip()}
    except OSError:
        return set()


def add_acks(ws: "Workspace", session_id: str, message_ids: list[str]) -> None:
    path = _acks_path(ws, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # append-only: concurrent ackers never lose each other's lines
        fh.write("".join(f"{m}\n" for m in message_ids))
        fh.flush()
        os.fsync(fh.fileno())


def read_json(ws: "Workspace", name: str) -> dict:
    try:
        return json.loads((ws.paths.shared / name).read_text())
    except (OSError, ValueError):
        return {}


def write_json(ws: "Workspace", name: str, data: dict) -> None:
    store.atomic_write_local(ws.paths.shared / name, json.dumps(data, sort_keys=True).encode())


class registered_watcher:
    """``with registered_watcher(ws, session_id):`` marks a running watcher (pid file) for ``handoff doctor``."""

    def __init__(self, ws: "Workspace", session_id: str):
        self.path = ws.paths.shared / "watchers" / f"{session_id}.{os.getpid()}.json"
        self.info = {"session_id": session_id, "pid": os.getpid()}

    def __enter__(self):
        store.atomic_write_local(self.path, json.dumps(self.info).encode())
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
