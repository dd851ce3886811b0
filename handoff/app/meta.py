"""What every write reports: whether it was committed, and where its files are.

``committed``/``commit``: the commit holding the files (null when none yet); ``commit_skipped``: why an
attempted commit did not happen; ``commit_pending``: the files are published with pending markers and the
next write or ``handoff flush`` commits them (``commit: batch``, or a commit that failed); all false/null
with ``commit: off`` or ``--no-commit`` (your own commit carries the files)."""
from __future__ import annotations

from typing import Any

from handoff.app.workspace import WriteResult

JSON = dict[str, Any]


def write_meta(result: WriteResult) -> JSON:
    return {"committed": result.committed, "commit": result.commit, "commit_skipped": result.commit_skipped,
            "commit_pending": result.commit_pending, "replayed": result.replayed, "paths": result.paths}


def event_meta(result: WriteResult) -> JSON:
    """A one-event write (``session new``, ``session close``): its event id and file, then ``write_meta``'s fields."""
    return {"event_id": result.events[0]["id"], "path": result.paths[0] if result.paths else None, "committed": result.committed,
            "commit": result.commit, "commit_skipped": result.commit_skipped, "commit_pending": result.commit_pending,
            "replayed": result.replayed}
