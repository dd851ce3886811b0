"""Reading every event file into decoded records.

This is the seam for the content-keyed cache: callers ask for records and
never care whether they were parsed now or earlier.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import reducer, store
from .remotes import remote_records

if TYPE_CHECKING:
    from .workspace import Workspace


def load_records(ws: "Workspace") -> list[dict]:
    out = []
    for rel, st, problem in store.list_event_files(ws.root):
        if problem:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"{problem}: not read"}})
            continue
        try:
            data = store.read_event_file(ws.root, rel, st)
        except OSError as exc:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"unreadable: {exc}"}})
            continue
        out.append(reducer.decode(rel, data))
    return out + remote_records(ws, {r["path"] for r in out})
