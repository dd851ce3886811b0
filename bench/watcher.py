"""A minimal inbox watcher for the bench when the build has no ``handoff watch``: the FileWatcher engine
plus an inbox reconcile from the index, printing one JSON line per new inbox entry (``{"id": ...}``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handoff import index
from handoff.app.watchfs import FileWatcher
from handoff.app.workspace import Workspace
from handoff.core import queries, session_ops
from handoff.store import clock


def main(repo: str, session: str) -> None:
    ws = Workspace(repo)
    seen: set[str] = set()

    def reconcile() -> None:
        state = ws.state(refresh=True)
        s = session_ops.session_for(state, session, write=False)
        for e in queries.inbox(index.for_inbox(state, s), s, set(), clock.now_ms()):
            if e["id"] not in seen:
                seen.add(e["id"])
                sys.stdout.write(json.dumps({"id": e["id"]}) + "\n")
        sys.stdout.flush()

    with FileWatcher(ws.paths.worktree, ws.paths.git_dir) as watcher:
        reconcile()
        while True:
            if watcher.wait(timeout=5.0):
                reconcile()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
