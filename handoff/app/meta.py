"""What every write reports: whether it was committed, and where its files are."""
from __future__ import annotations

from typing import Any

from handoff.app.workspace import WriteResult

JSON = dict[str, Any]


def write_meta(result: WriteResult) -> JSON:
    return {"committed": result.committed, "commit": result.commit, "commit_skipped": result.commit_skipped,
            "replayed": result.replayed, "paths": result.paths}


def event_meta(result: WriteResult) -> JSON:
    """A one-event write (``session new``, ``session close``): its event id and file, then ``write_meta``'s fields."""
    return {"event_id": result.events[0]["id"], "path": result.paths[0] if result.paths else None, "committed": result.committed,
            "commit": result.commit, "commit_skipped": result.commit_skipped, "replayed": result.replayed}
