"""Read-only questions to git about the event files."""
from __future__ import annotations

from typing import TYPE_CHECKING

from handoff.git import cmd as gitcmd

if TYPE_CHECKING:
    from handoff.app.workspace import Workspace


def uncommitted_events(ws: Workspace) -> int:
    """Event files present in the work tree but not in HEAD (untracked or staged only)."""
    proc = gitcmd.run(ws.paths.worktree, "status", "--porcelain", "-z", "-uall", "--", ".handoffs/events",
                      check=False)
    if proc.returncode != 0:
        return 0
    return sum(1 for entry in proc.stdout.split(b"\0") if entry[:2] in (b"??", b"A "))
