"""``handoff session new|list|status|history|events|close``."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.views import render

from .apps import session_app
from .common import Cx, IdOpt, SessionOpt, command


@command(session_app, "new", writes=True)
def new(cx: Cx,
        agent: Annotated[str, typer.Option("--agent", "-a", help="agent name, e.g. reviewer")],
        channel: Annotated[list[str], typer.Option("--channel", "-c", help="channel to join (repeatable)")],
        name: Annotated[Optional[str], typer.Option("--name", "-n", help="display name, used in the peer id")] = None,
        workspace: Annotated[Optional[str], typer.Option("--workspace", help="accepted for AGH compatibility")] = None,
        session_id: Annotated[Optional[str], typer.Option("--id", help="choose the session id (sess_...)")] = None,
        reopen: Annotated[bool, typer.Option("--reopen", help="with --id: reopen that session if it is closed")] = False):
    """Open a session; prints its id and peer id (<name-or-agent>.<session>).

    Repeating the same --id, agent, name and channels returns the original session; a closed one is
    refused (session_closed) unless --reopen is given.

    \b
    Example:
      handoff session new --agent reviewer --channel release --name release-reviewer -o json
    """
    hf = cx.hf
    if workspace is not None and workspace != hf.workspace_id:
        cx.note(f"note: --workspace {workspace} differs from .handoffs/config.yaml ({hf.workspace_id}); "
                "the repository's workspace is used")
    data = hf.open_session(agent, channel, name=name, session_id=session_id, workspace=workspace,
                           reopen=reopen).opened
    cx.emit(data, lambda d: f"{d['session_id']}\npeer: {d['peer_id']}\n"
                            f"export HANDOFF_SESSION={d['session_id']}")


@command(session_app, "list")
def list_(cx: Cx, all_: Annotated[bool, typer.Option("--all", help="include closed sessions")] = True,
          channel: Annotated[Optional[str], typer.Option("--channel", "-c")] = None):
    """List sessions.

    \b
    Example:
      handoff session list -o json
    """
    sessions = cx.hf.sessions(channel, include_closed=all_)
    cx.emit({"sessions": sessions}, lambda d: render.table(d["sessions"], ["session_id", "peer_id", "agent",
                                                                          "state", "opened_at"]))


@command(session_app, "status")
def status(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")]):
    """One session: identity, channels, inbox depth, open work.

    \b
    Example:
      handoff session status sess_receiver -o json
    """
    cx.emit(cx.me(session_id).status())


@command(session_app, "history")
def history(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")]):
    """What a session sent and received (its conversation timeline).

    \b
    Example:
      handoff session history sess_receiver -o jsonl
    """
    cx.emit(cx.me(session_id).history(), _timeline_human)


@command(session_app, "events")
def events(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")],
           last: Annotated[Optional[int], typer.Option("--last", "-n", help="only the last N events")] = None):
    """Every event the session wrote, in event order.

    \b
    Example:
      handoff session events sess_receiver --last 50
    """
    cx.emit(cx.me(session_id).events(last), _timeline_human)


def _timeline_human(d: dict) -> str:
    rows = d.get("messages") or d.get("events") or []
    if not rows:
        return "(nothing yet)"
    out = []
    for m in rows:
        body = m.get("body") or {}
        what = body.get("text") or body.get("message") or body.get("status") or body.get("state") or ""
        arrow = {"sent": "->", "received": "<-"}.get(m.get("direction"), "  ")
        out.append(f"{m['ts']} {arrow} {m['kind']:<13} {render.safe(m.get('work_id') or '')} {render.one_line(what, 80)}")
    return "\n".join(out)


@command(session_app, "close", writes=True)
def close(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")], given_id: IdOpt = None,
          by: SessionOpt = None):
    """Close a session (recorded as an event; its history stays).

    With --session (or HANDOFF_SESSION) naming another session, the close is written by that one: it
    must belong to the same agent or to an agent in identity.admins.

    \b
    Examples:
      handoff session close sess_receiver
      handoff session close sess_stale --session "$S"
    """
    cx.emit(cx.me(session_id).close(by=by, id=given_id), lambda d: f"closed {d['session_id']}")
