"""``handoff flush``: commit what batched writes (``commit: batch``) left pending, as one commit."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .apps import app
from .common import Cx, command


@command(app, "flush")
def flush(cx: Cx,
          after: Annotated[Optional[float], typer.Option(
              "--after", help="wait this many seconds first (what the background flusher runs)")] = None,
          ticket: Annotated[Optional[str], typer.Option("--ticket", hidden=True)] = None):
    """Commit, as one commit of .handoffs/ paths only, every event file that batched writes
    (`commit: batch`) or an interrupted commit left uncommitted.  Nothing pending: nothing to do.

    \b
    Examples:
      handoff flush
      handoff flush -o json
    """
    if after is not None and not 0 <= after <= 3600:
        from handoff.errors import HandoffError
        raise HandoffError("invalid_argument", f"--after {after:g} is not between 0 and 3600 seconds",
                           hint="e.g. --after 2")
    cx.emit(cx.hf.flush(after=after, ticket=ticket), _human)


def _human(r: dict) -> str:
    if r.get("superseded"):
        return "nothing to do: another flush took this one's place"
    if r["committed"]:
        line = f"committed {r['events']} event file(s) as {r['commit'][:12]}"
    elif r.get("commit_skipped"):
        line = f"not committed: {r['commit_skipped']}"
    else:
        line = "nothing to commit: no event file is pending"
    return line + (f"\n  {r['pending']} still pending" if r["pending"] else "")
