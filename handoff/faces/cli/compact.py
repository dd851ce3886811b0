"""``handoff compact``: seal old, finished history into archive segments (a maintainer's command)."""
from __future__ import annotations

from typing import Annotated

import typer

from .apps import app
from .common import Cx, command


def _human(r: dict) -> str:
    verb = "would seal" if r["dry_run"] else "sealed"
    lines = [f"handoff compact: {verb} {r['sealed']} event file(s) before {r['before']} into "
             f"{len(r['segments'])} segment(s) ({r['bytes']} bytes); {r['removed']} file(s) removed, "
             f"{r['remaining']} left in .handoffs/events/"]
    lines += [f"  {seg}" for seg in r["segments"]]
    if r.get("commit"):
        lines.append(f"  commit {r['commit'][:12]}")
    if r.get("commit_skipped"):
        lines.append(f"  not committed: {r['commit_skipped']}")
    return "\n".join(lines)


@command(app, "compact")
def compact(cx: Cx, before: Annotated[str, typer.Option("--before", help="seal history older than this age "
                                                                          "(30d, 12h, 2w) or time (RFC 3339)")],
            dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be sealed; change nothing")] = False):
    """Seal finished history older than --before into .handoffs/archive/, removing its event files in one commit.

    Only terminal work, closed sessions and messages outside open work are sealed; every read (inbox,
    log, metrics, report, work lookup) still sees them, and `handoff verify` checks each removal.

    \b
    Examples:
      handoff compact --before 30d --dry-run
      handoff compact --before 2026-11-01T00:00:00Z -o json
    """
    cx.emit(cx.hf.compact(before=before, dry_run=dry_run), _human)
