"""Session writes: resolving the session a command acts as, opening one, and closing one.

Pure functions from state to event drafts (see ``message_ops`` for what a draft is).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handoff.core import ids, queries
from handoff.core.retries import apply_idempotency
from handoff.errors import HandoffError


def session_for(state: dict[str, Any], ident: str | None, *, write: bool = True, own: dict[str, Any] | None = None) -> dict[str, Any]:
    """The session ``ident`` names (id or peer id).  ``own``: the sessions this clone opened (session id ->
    its open as written, ``local.own_sessions``); a write for one of them goes out as that peer even when
    another open of the same id sorts first in the log (the reducer gives the id to that one)."""
    if not ident:
        raise HandoffError("no_session", "no session given",
                           hint="pass --session ID or set HANDOFF_SESSION (create one with `handoff session new`)")
    if not ids.is_safe(ident):
        raise HandoffError("invalid_id", f"session {ident!r} is not a session or peer id",
                           hint="pass a session id (sess_...) or a peer id (agent.sess_...), e.g. from "
                                "`handoff session list`")
    s = queries.find_session(state, ident)
    mine = _own_session(own or {}, ident, s)
    if mine is not None:
        s = dict(queries.find_session(state, mine["session_id"]) or {}, **mine)
    if s is None:
        raise HandoffError("session_not_found", f"session {ident!r} not found",
                           hint="list sessions with `handoff session list`")
    if write and s["state"] == "closed":
        raise HandoffError("session_closed", f"session {s['session_id']} is closed",
                           hint="open a new one with `handoff session new`")
    return s


def _own_session(own: dict[str, Any], ident: str, found: dict[str, Any] | None) -> dict[str, Any] | None:
    """This clone's own open of the session ``ident`` names, when the log gives that id to another open."""
    rec = own.get(found["session_id"] if found else ident) or next(
        (r for r in own.values() if r["peer_id"] == ident), None)
    if rec is None or (found is not None and found.get("open_event_id") == rec.get("open_event_id")):
        return None
    if found is not None and found["session_id"] != rec["session_id"]:
        return None  # ``ident`` named another session (by its peer id): not ours to override
    return {k: rec.get(k) for k in ("session_id", "peer_id", "agent", "name")}


def session_open(state: dict[str, Any], *, agent: str, channels: list[str], name: str | None, session_id: str,
                 workspace: str | None, reopen: bool = False) -> list[dict[str, Any]]:
    """Open session ``session_id``; with an id already opened by the same identity, the original open (a
    retry).  A closed one is refused, or with ``reopen`` reopened by a new open naming the close it undoes
    (``body.reopens``: the reducer applies it only while that close is the session's last)."""
    ids.check_id("agent", agent)
    for c in channels:
        ids.check_id("channel", c)
    if name is not None:
        ids.check_id("agent", name)
    ids.check_id("session", session_id)
    peer = f"{name or agent}.{session_id}"
    ids.check_id("peer", peer)
    body = {"agent": agent, "channels": sorted(set(channels)), "name": name, "workspace": workspace}
    existing = state["sessions"].get(session_id)
    if existing is not None:  # `--id` makes `session new` idempotent: same identity -> the original
        same = (existing["peer_id"], existing["agent"], existing["name"], sorted(existing["channels"])) == \
            (peer, agent, name, body["channels"])
        if same and existing["state"] == "closed":  # a replay would hand back a session every write refuses
            if reopen:
                body["reopens"] = existing.get("close_event_id")
                return [{"kind": "session-open", "from": peer, "session_id": session_id,
                         "body": {k: v for k, v in body.items() if v is not None}}]
            raise HandoffError("session_closed", f"session {session_id} is closed ({existing.get('closed_at')}): "
                                                 "`session new --id` does not reopen it",
                               hint=f"open a new session: leave --id out (handoff session new --agent {agent} "
                                    + " ".join(f"--channel {c}" for c in sorted(set(channels)))
                                    + "), or add --reopen to reopen this one, with its inbox and open work")
        if same:
            opened = {"kind": "session-open", "id": existing.get("reopen_event_id") or existing["open_event_id"],
                      "from": existing["peer_id"], "session_id": session_id}
            return [{"_replay": opened}]
        raise HandoffError("id_conflict", f"session {session_id} already belongs to {existing['peer_id']} (agent "
                                          f"{existing['agent']!r}) with other channels or name: a session id is "
                                          "its first opener's",
                           hint="open your session with a new id (leave --id out), or repeat the original command "
                                "exactly to retry it")
    return [{"kind": "session-open", "from": peer, "session_id": session_id,
             "body": {k: v for k, v in body.items() if v is not None}}]


def session_close(state: dict[str, Any], session: dict[str, Any], given_id: str | None = None, *, by: dict[str, Any] | None = None,
                  admins: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Close ``session``, written by the session itself or by ``by`` (another session of the same agent,
    or of an ``identity.admins`` agent: the reducer ignores a close by anyone else)."""
    if session["state"] == "closed":  # closing twice changes nothing: the original close is returned
        return [{"_replay": {"kind": "session-close", "id": session.get("close_event_id"), "from": session["peer_id"],
                             "session_id": session["session_id"]}}]
    closer = by or session
    if closer["agent"] != session["agent"] and closer["agent"] not in admins:
        raise HandoffError("not_session_owner",
                           f"{closer['peer_id']} (agent {closer['agent']!r}) may not close session "
                           f"{session['session_id']} of agent {session['agent']!r}",
                           hint="only that agent's sessions, or an agent listed in identity.admins in "
                                ".handoffs/config.yaml, may close it")
    draft = {"kind": "session-close", "from": closer["peer_id"], "session_id": session["session_id"], "body": {}}
    apply_idempotency(draft, given_id)
    if draft.get("id"):
        draft["id"] = "evt_" + draft["id"][4:]
    return [draft]


# Commands a brief may still show for a closed session: reads, and local acknowledgements.
_STILL_WORK = ("handoff wait ", "handoff work lookup ", "handoff inbox ")


def closed_brief(brief: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    """``brief`` of a closed ``session`` with only the commands that still work (a closed session writes
    nothing: no accept, reply, progress, send), and a ``closed`` part saying how to go on."""
    sid = session["session_id"]
    for section in ("inbox", "handoffs_to_me", "handoffs_from_me", "open_work"):
        for row in brief.get(section) or []:
            kept = [c for c in row.get("do") or [] if c.startswith(_STILL_WORK)]
            if section == "inbox" and not row.get("work_id") and len(kept) < len(row.get("do") or []):
                # a message it could have answered: reading the conversation is what is left
                room = (f"threads messages --channel {row['channel']} --thread {row['thread_id']}" if row.get("thread_id")
                        else f"directs messages --channel {row['channel']} --direct {row.get('direct_id')}")
                kept.insert(0, f"handoff {room}")
            if not kept:
                kept = [f"handoff work lookup {row['work_id']}" if row.get("work_id")
                        else f"handoff session status {sid}"]
            row["do"] = kept
    new = f"handoff session new --agent {session['agent']} " + " ".join(
        f"--channel {c}" for c in session.get("channels") or [])
    name = f" --name {session['name']}" if session.get("name") else ""
    brief["closed"] = {
        "closed_at": session.get("closed_at"),
        "message": f"session {sid} is closed: it can read, not write; open a new session to act, or reopen "
                   "this one to finish its own open work",
        "do": [new.rstrip(), f"{new.rstrip()}{name} --id {sid} --reopen"],
    }
    return brief
