"""Narrowed states: only the rows a view or a watcher's timers can use, read from the indexes.

Each takes the state ``state()`` returned (a ``lazy.State``) and hands a plain state dict through as
it is.
"""
from __future__ import annotations

import marshal

from handoff.index.lazy import State


def for_inbox(state: dict, session: dict, skip: set[str] | frozenset[str] | None = None) -> dict:
    """The state ``queries.inbox`` needs for ``session``: only the messages it can keep or count as replies.

    ``queries.inbox`` looks at messages from the session's peer (its replies) and at messages addressed
    to it or broadcast in its channels since it joined; it skips everything else.  ``skip``: ids of
    messages the caller will not show whatever they are (acknowledged ones, for an inbox without
    ``--all``); they are left out before their records are read, unless the session's peer sent them
    (those count as replies).  With ``skip`` given (even empty), the session's own messages are read only
    where they answer a message kept (all ``queries.inbox`` asks of them); without it, all of them (a
    watcher's ``delivery.due`` looks at them).  A plain state dict is returned as it is.
    """
    if not isinstance(state, State):
        return state
    chans = list(session.get("channels") or [])
    marks = ",".join("?" * len(chans))
    peer = session["peer_id"]
    messages = state["messages"]
    if skip is None:
        return state.narrowed(messages=messages.where(
            f"m.frm=? OR m.to_ IN (?,?,?) OR (m.to_ IS NULL AND m.surface='thread' AND m.channel IN ({marks}) "
            f"AND m.hlc>=?)",
            (peer, peer, session["session_id"], session["agent"], *chans, session.get("opened_hlc", ""))))
    # the same three conditions, each answered from an index alone (ids included): records are read
    # only for the messages kept
    # (its own messages are no entries: ``queries.inbox`` skips them)
    keep: dict[int, str] = {}
    for o, mid, frm in messages.select("SELECT ord, id, frm FROM messages WHERE to_ IN (?,?,?)",
                                       (peer, session["session_id"], session["agent"])):
        if mid not in skip and frm != peer:
            keep[o] = mid
    for o, mid, frm in messages.select(
            f"SELECT ord, id, frm FROM messages WHERE to_ IS NULL AND surface='thread' AND channel IN ({marks}) "
            f"AND hlc>=?", (*chans, session.get("opened_hlc", ""))):
        if mid not in skip and frm != peer:
            keep[o] = mid
    return kept_state(state, session, keep)


def kept_state(state: State, session: dict, keep: dict[int, str]) -> dict:
    """The narrowed state of the candidate messages ``keep`` (position -> id) and the session's own
    messages that answer one of them: only those count as its replies (``queries.inbox``), not
    everything it ever sent (table ``answers``)."""
    peer = session["peer_id"]
    messages = state["messages"]
    mine = _answering(messages, peer, sorted(set(keep.values())))
    kept = messages.at(sorted(keep.keys() | mine))
    state["work"].preload({m["work_id"] for m in kept if m["from"] != peer and isinstance(m.get("work_id"), str)})
    return state.narrowed(messages=kept)


def _answering(messages, peer: str, ids: list[str]) -> set[int]:
    """Positions of ``peer``'s messages that answer one of ``ids`` (reply_to, causation_id, for_id)."""
    out: set[int] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out.update(o for (o,) in messages.select(
            f"SELECT a.ord FROM answers a JOIN messages m ON m.ord = a.ord WHERE a.id IN ({','.join('?' * len(chunk))}) "
            f"AND m.frm=?", (*chunk, peer)))
    return out


def timer_units(state: dict, sessions: list[dict]) -> list[dict] | None:
    """The work units ``deadlines.reminders_due`` / ``next_reminder_ms`` can report for ``sessions``: open units
    with a deadline whose target is one of them (table ``timers``), in state order.  None for a plain state
    dict (then they look at every unit, as they always did)."""
    if not isinstance(state, State) or not sessions:
        return None if not isinstance(state, State) else []
    from handoff.core import timers
    db = state.db
    peers, agents = {s["peer_id"] for s in sessions}, {s["agent"] for s in sessions}
    wids = [wid for wid, due, target, agent in db.execute("SELECT wid, due, target, agent FROM timers")
            if timers.may_concern((due, target, agent), peers, agents)]
    out = []
    for i in range(0, len(wids), 500):
        chunk = wids[i:i + 500]
        out += db.execute(f"SELECT seq, data FROM work WHERE wid IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return [marshal.loads(data) for _seq, data in sorted(out)]


def for_container(state: dict, *, channel: str, thread_id: str | None = None,
                  direct_id: str | None = None) -> dict:
    """The state ``views.container_messages`` needs: only that thread's or room's messages."""
    if not isinstance(state, State):
        return state
    if thread_id is not None:
        msgs = state["messages"].where("m.channel=? AND m.thread=?", (channel, thread_id))
    else:
        msgs = state["messages"].where("m.channel=? AND m.direct=?", (channel, direct_id))
    return state.narrowed(messages=msgs)
