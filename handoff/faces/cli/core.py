"""Workspace-level commands: init, status, channels, peers."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.views import render

from .apps import app
from .common import Cx, command


@command(app, "init", writes=True)
def init(cx: Cx, workspace: Annotated[Optional[str], typer.Option("--workspace", help="workspace id")] = None):
    """Create .handoffs/ in this repository (harmless to run twice).

    \b
    Example:
      handoff init --workspace project
    """
    from handoff.app.api import Handoff
    result = Handoff.init(cx.repo, workspace, commit=cx.commit).initialized
    cx.emit(result, lambda r: "\n".join(
        [f"initialized .handoffs/ (workspace {r['workspace_id']})"] +
        [f"  created {p}" for p in r["created"]] + [f"  kept    {p}" for p in r["kept"]] +
        ([f"  committed {r['commit'][:12]}"] if r.get("commit") else [])))


@command(app, "status")
def status(cx: Cx, handoff_id: Annotated[Optional[str], typer.Argument(
        metavar="WORK_ID", show_default=False, help="a handoff/work id: show its status (--work WORK_ID also works)")] = None):
    """Workspace counters, or one handoff's status when an ID is given.

    \b
    Examples:
      handoff status -o json
      handoff status work_01jv8...
    """
    if handoff_id:
        return cx.emit(cx.hf.handoff(handoff_id), _handoff_human)
    cx.emit(cx.hf.status())


def _handoff_human(h: dict) -> str:
    lines = [f"{h['handoff_id']}  {render.state_words(h['status'], h['state'])}",
             f"  {render.safe(h['from'])} -> {render.safe(h['to'])} in #{h['channel']}",
             f"  {render.one_line(h['description'])}", f"  requested {h['requested_at']}"]
    if h.get("responded_at"):
        lines.append(f"  responded {h['responded_at']}" + (f" by {h['accepted_by']}" if h.get("accepted_by") else ""))
    if h.get("reason"):
        lines.append(f"  reason: {render.one_line(h['reason'])}")
    if h.get("overdue"):
        lines.append(f"  OVERDUE (deadline {h['deadline_at']})")
    return "\n".join(lines)


@command(app, "channels")
def channels(cx: Cx):
    """Channel summaries: peers, threads, direct rooms, open work, last activity.

    \b
    Example:
      handoff channels -o json
    """
    data = {"channels": cx.hf.channels()}
    cx.emit(data, lambda d: render.table(d["channels"], ["channel", "peer_count", "thread_count", "direct_count",
                                                         "open_work_count", "last_activity_at"]))


@command(app, "peers")
def peers(cx: Cx, channel: Annotated[str, typer.Argument(help="channel name")]):
    """The sessions visible in a channel.

    \b
    Example:
      handoff peers release -o json
    """
    data = {"channel": channel, "peers": cx.hf.peers(channel)}
    cx.emit(data, lambda d: render.table(d["peers"], ["peer_id", "agent", "state", "last_activity_at"]))
