"""``handoff session new|list|status|history|events|close``."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.core import queries, session_ops, work_ops
from handoff.store import clock
from handoff.views import payloads as views
from handoff.views import render

from .apps import session_app
from .common import Cx, IdOpt, SessionOpt, command


@command(session_app, "new", writes=True)
def new(cx: Cx,
        agent: Annotated[str, typer.Option("--agent", "-a", help="agent name, e.g. reviewer")],
        channel: Annotated[list[str], typer.Option("--channel", "-c", help="channel to join (repeatable)")],
        name: Annotated[Optional[str], typer.Option("--name", "-n", help="display name, used in the peer id")] = None,
        workspace: Annotated[Optional[str], typer.Option("--workspace", help="accepted for AGH compatibility")] = None,
        session_id: Annotated[Optional[str], typer.Option("--id", help="choose the session id (sess_...)")] = None):
    """Open a session; prints its id and peer id (<name-or-agent>.<session>).

    Example: handoff session new --agent reviewer --channel release --name release-reviewer -o json
    """
    ws = cx.ws
    if workspace is not None and workspace != ws.workspace_id:
        cx.note(f"note: --workspace {workspace} differs from .handoffs/config.yaml ({ws.workspace_id}); "
                "the repository's workspace is used")
    data = cx.hf.open_session(agent, channel, name=name, session_id=session_id, workspace=workspace).opened
    cx.emit(data, lambda d: f"{d['session_id']}\npeer: {d['peer_id']}\n"
                            f"export HANDOFF_SESSION={d['session_id']}")


def _write_meta(result) -> dict:
    return {"event_id": result.events[0]["id"], "path": (result.paths or [None])[0], "committed": result.committed,
            "commit": result.commit, "commit_skipped": result.commit_skipped, "replayed": result.replayed}


@command(session_app, "list")
def list_(cx: Cx, all_: Annotated[bool, typer.Option("--all", help="include closed sessions")] = True,
          channel: Annotated[Optional[str], typer.Option("--channel", "-c")] = None):
    """List sessions.

    Example: handoff session list -o json
    """
    sessions = [views.session_view(s) for s in cx.ws.state()["sessions"].values()
                if (all_ or s["state"] == "active") and (channel is None or channel in s["channels"])]
    sessions.sort(key=lambda s: (s["opened_at"], s["session_id"]))
    cx.emit({"sessions": sessions}, lambda d: render.table(d["sessions"], ["session_id", "peer_id", "agent",
                                                                          "state", "opened_at"]))


def _session(cx: Cx, ident: str) -> tuple[dict, dict]:
    from handoff.store.local import own_sessions
    state = cx.ws.state()
    return state, session_ops.session_for(state, ident, write=False, own=own_sessions(cx.ws, ident))


@command(session_app, "status")
def status(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")]):
    """One session: identity, channels, inbox depth, open work.

    Example: handoff session status sess_receiver -o json
    """
    state, s = _session(cx, session_id)
    now = clock.now_ms()
    inbox = queries.inbox(state, s, _acks(cx, s), now)
    work = [w for w in state["work"].values() if s["peer_id"] in (w["opened_by_peer_id"], w["target_peer_id"])]
    data = {**views.session_view(s),
            "inbox_count": len(inbox),
            "open_work": [queries.work_brief(w, now) for w in work if not work_ops.is_terminal(w)],
            "sent": sum(1 for m in state["messages"] if m["from"] == s["peer_id"])}
    cx.emit(data)


def _acks(cx: Cx, s: dict) -> set:
    from handoff.store.local import read_acks
    return read_acks(cx.ws, s["session_id"])


@command(session_app, "history")
def history(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")]):
    """What a session sent and received (its conversation timeline).

    Example: handoff session history sess_receiver -o jsonl
    """
    state, s = _session(cx, session_id)
    peer = s["peer_id"]
    items = []
    for m in state["messages"]:
        if m["from"] == peer:
            items.append({**queries.message(m), "direction": "sent"})
        elif queries.addressed_to(m, s):
            items.append({**queries.message(m), "direction": "received"})
    cx.emit({"session_id": s["session_id"], "messages": items}, _timeline_human)


@command(session_app, "events")
def events(cx: Cx, session_id: Annotated[str, typer.Argument(help="session id or peer id")],
           last: Annotated[Optional[int], typer.Option("--last", "-n", help="only the last N events")] = None):
    """Every event the session wrote, in event order.

    Example: handoff session events sess_receiver --last 50
    """
    _state, s = _session(cx, session_id)
    recs = [r["event"] for r in cx.ws.records() if "event" in r]
    mine = sorted((e for e in recs if e.get("session_id") == s["session_id"] or e["from"] == s["peer_id"]),
                  key=lambda e: (e["hlc"], e["id"]))
    if last is not None:
        mine = mine[-last:] if last > 0 else []
    cx.emit({"session_id": s["session_id"], "events": mine}, _timeline_human)


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

    Example: handoff session close sess_receiver        handoff session close sess_stale --session "$S"
    """
    from handoff.core.checks import admins_of
    from handoff.store.local import own_sessions
    ws = cx.ws
    own = own_sessions(ws, session_id, by)
    admins = admins_of(ws.config)

    def build(st):
        target = session_ops.session_for(st, session_id, write=False, own=own)
        actor = session_ops.session_for(st, by, own=own) if by else None
        if actor is not None and actor["session_id"] == target["session_id"]:
            actor = None
        return session_ops.session_close(st, target, given_id, by=actor, admins=admins)

    result = ws.write(build, commit=cx.commit)
    cx.emit({"session_id": result.events[0]["session_id"], "state": "closed", **_write_meta(result)},
            lambda d: f"closed {d['session_id']}")
