"""The Python API: the command line's operations as plain calls.

    from handoff import Handoff

    hf = Handoff("path/to/repo")                      # or Handoff.init(path)
    coord = hf.open_session("coordinator", ["release"])
    review = hf.open_session("reviewer", ["release"])
    h = coord.request("reviewer", "release", "Check the release docs", context={"next_steps": [...]})
    for entry in review.inbox()["entries"]: ...
    review.accept(h["handoff_id"])
    review.progress(h["handoff_id"], checkpoint={"done": ["README.md"]})
    review.complete(h["handoff_id"], result={"ok": True})
    hf.work(h["handoff_id"])["state"]                  # 'completed'

Every call returns the same JSON-ready dict the CLI prints with ``-o json``
and raises ``HandoffError`` (``reason_code``, ``message``, ``hint``) for the
same refusals.  The CLI commands are thin wrappers over these calls.

Reads re-read the files each time (through the parse cache), so a
long-lived ``Handoff`` (an MCP server, an agent loop) sees other processes'
writes.  The CLI passes ``snapshot=True``: one process, one consistent read.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from handoff.app.workspace import Workspace, WriteResult
from handoff.core import message_ops, queries, session_ops, work_ops
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.views import payloads as views

JSON = dict[str, Any]


def write_meta(result: WriteResult) -> JSON:
    return {"committed": result.committed, "commit": result.commit, "commit_skipped": result.commit_skipped,
            "replayed": result.replayed, "paths": result.paths}


class Handoff:
    """One repository's ``.handoffs/``: reads, and the factory of sessions."""

    def __init__(self, repo: str | os.PathLike | None = None, *, commit: bool | None = None,
                 workspace: Workspace | None = None, snapshot: bool = False):
        self.ws = workspace if workspace is not None else Workspace(repo)
        self.commit = commit
        self._snapshot = snapshot

    @classmethod
    def init(cls, repo: str | os.PathLike | None = None, workspace_id: str | None = None, *,
             commit: bool | None = None) -> Handoff:
        """``handoff init``: create ``.handoffs/`` (harmless twice), then open it."""
        from handoff.app.init import init_workspace
        init_workspace(None if repo is None else os.fspath(repo), workspace_id, commit=commit)
        return cls(repo, commit=commit)

    # --------------------------------------------------------------- reads
    def state(self) -> dict:
        return self.ws.state(refresh=not self._snapshot)

    @property
    def workspace_id(self) -> str:
        return self.ws.workspace_id

    def status(self) -> JSON:
        from handoff.app.gitstate import uncommitted_events
        return {"workspace_id": self.ws.workspace_id, "repo": str(self.ws.paths.worktree),
                **views.status(self.state()), "uncommitted_events": uncommitted_events(self.ws)}

    def channels(self) -> list[JSON]:
        return views.channels(self.state())

    def peers(self, channel: str) -> list[JSON]:
        from handoff.core import ids
        ids.check_id("channel", channel)
        return views.peers(self.state(), channel, clock.now_ms())

    def sessions(self, channel: str | None = None, *, include_closed: bool = True) -> list[JSON]:
        rows = [views.session_view(s) for s in self.state()["sessions"].values()
                if (include_closed or s["state"] == "active") and (channel is None or channel in s["channels"])]
        return sorted(rows, key=lambda s: (s["opened_at"], s["session_id"]))

    def work(self, work_id: str, *, history: bool = True) -> JSON:
        """``handoff work lookup``: one work unit (a handoff id is its work id)."""
        from handoff.core import leases
        st = self.state()
        w = work_ops.find_work(st, work_id)
        now = clock.now_ms()
        return {**views.work_payload(w, now, history=history), "lease": leases.view(st, w, now)}

    def work_list(self, state: str | None = None, channel: str | None = None,
                  session: str | None = None) -> list[JSON]:
        """``handoff work list``: ``state`` is a work state or ``open``."""
        st = self.state()
        now = clock.now_ms()
        peer = session_ops.session_for(st, session, write=False)["peer_id"] if session else None
        rows = []
        for w in sorted(st["work"].values(), key=lambda w: (w["opened_at"], w["work_id"])):
            if (state == "open" and work_ops.is_terminal(w)) or (state not in (None, "open") and w["state"] != state):
                continue
            if (channel and w["channel"] != channel) or (peer and peer not in (w["opened_by_peer_id"],
                                                                             w["target_peer_id"])):
                continue
            rows.append(views.work_payload(w, now, history=False))
        return rows

    def handoff(self, handoff_id: str) -> JSON:
        """``handoff status ID``: Hivemind's view of one handoff."""
        return views.handoff_view(work_ops.find_work(self.state(), handoff_id), clock.now_ms())

    def handoffs(self, to: str | None = None, status: str | None = None, channel: str | None = None) -> list[JSON]:
        """``handoff list``: work opened with ``request``, oldest first."""
        if status not in (None, *views.HANDOFF_STATUSES):
            raise HandoffError("invalid_argument", f"unknown status {status!r}", hint=", ".join(views.HANDOFF_STATUSES))
        st = self.state()
        now = clock.now_ms()
        agents_of = {s["peer_id"]: s["agent"] for s in st["sessions"].values()}
        rows = []
        for w in sorted(st["work"].values(), key=lambda w: (w["opened_at"], w["work_id"])):
            if w.get("intent") != "handoff":
                continue
            h = views.handoff_view(w, now)
            if (status and h["status"] != status) or (channel and h["channel"] != channel):
                continue
            if to and to not in (h["to"], w["target_peer_id"], agents_of.get(w["target_peer_id"])):
                continue
            rows.append(h)
        return rows

    def threads(self, channel: str) -> list[JSON]:
        from handoff.core import ids
        ids.check_id("channel", channel)
        return views.threads_in(self.state(), channel)

    def messages(self, channel: str, *, thread: str | None = None, direct: str | None = None,
                 kind: str | None = None, work: str | None = None, limit: int | None = None) -> list[JSON]:
        """A thread's or direct room's messages in event order."""
        if (thread is None) == (direct is None):
            raise HandoffError("invalid_argument", "give a thread or a direct room", hint="thread=... or direct=...")
        from handoff.index import for_container
        st = for_container(self.state(), channel=channel, thread_id=thread, direct_id=direct)
        msgs = views.container_messages(st, channel=channel, thread_id=thread, direct_id=direct)
        msgs = [m for m in msgs if (kind is None or m["kind"] == kind) and (work is None or m.get("work_id") == work)]
        return msgs[-limit:] if limit else msgs

    def directs(self, channel: str, session: str | None = None) -> list[JSON]:
        st = self.state()
        rooms = [b for b in st["directs"].values() if b["channel"] == channel]
        if session:
            peer = session_ops.session_for(st, session, write=False)["peer_id"]
            rooms = [b for b in rooms if peer in (b["peer_a"], b["peer_b"])]
        rooms.sort(key=lambda b: (b["last_activity_at"], b["direct_id"]), reverse=True)
        return [views.direct_summary(b) for b in rooms]

    # ------------------------------------------------------------- sessions
    def open_session(self, agent: str, channels: list[str] | str, *, name: str | None = None,
                     session_id: str | None = None, workspace: str | None = None) -> Session:
        """``handoff session new``; the returned Session's ``opened`` holds the CLI's JSON."""
        chans = [channels] if isinstance(channels, str) else list(channels)
        sid = session_id if session_id is not None else f"sess_{clock.new_ulid()[-12:]}"  # --id "" is refused
        result = self.ws.write(lambda st: session_ops.session_open(st, agent=agent, channels=chans, name=name,
                                                           session_id=sid, workspace=workspace), commit=self.commit)
        if not result.replayed:
            from handoff.store.local import remember_session
            ev = result.events[0]
            remember_session(self.ws, {"session_id": sid, "peer_id": ev["from"], "agent": ev["body"]["agent"],
                                       "name": ev["body"].get("name"), "open_event_id": ev["id"]})
        sess = Session(self, sid)
        sess.opened = {**views.session_view(queries.find_session(self.ws.state(), sid)),
                       "event_id": result.events[0]["id"], "path": (result.paths or [None])[0],
                       "committed": result.committed, "commit": result.commit,
                       "commit_skipped": result.commit_skipped, "replayed": result.replayed}
        return sess

    def session(self, ident: str | None = None) -> Session:
        """An existing session by id or peer id (default: ``HANDOFF_SESSION``)."""
        ident = ident or os.environ.get("HANDOFF_SESSION")
        s = session_ops.session_for(self.state(), ident, write=False)
        return Session(self, s["session_id"])

    # ------------------------------------------------------------ blocking
    def wait(self, work_id: str, timeout: float | None = None, *, until_input: bool = False) -> JSON:
        """``handoff wait``: block (on file events) until the work is terminal, or needs input with
        ``until_input``, or ``timeout`` seconds pass.  ``wait_result`` says which: completed, failed,
        canceled, needs_input or timeout."""
        from handoff.app.watch import wait_for
        payload, outcome = wait_for(self.ws, work_id, timeout, until_input)
        return {**payload, "wait_result": outcome}


class Session:
    """One agent session: everything it can do.  Cheap to create; resolved at each call."""

    def __init__(self, hf: Handoff, ident: str):
        self.hf = hf
        self.ident = ident
        self.opened: JSON | None = None

    def __repr__(self) -> str:
        return f"Session({self.ident!r})"

    @property
    def ws(self) -> Workspace:
        return self.hf.ws

    def _me(self, state, *, write: bool = False) -> dict:
        """The session this object acts as, resolved in ``state`` (as this clone opened it: ``session_ops.session_for``)."""
        from handoff.store.local import own_sessions
        return session_ops.session_for(state, self.ident, write=write, own=own_sessions(self.ws, self.ident))

    def info(self) -> JSON:
        return views.session_view(self._me(self.hf.state()))

    @property
    def session_id(self) -> str:
        return self.info()["session_id"]

    @property
    def peer_id(self) -> str:
        return self.info()["peer_id"]

    # -------------------------------------------------------------- writes
    def _write(self, builder) -> WriteResult:
        return self.ws.write(lambda st: builder(st, self._me(st, write=True)), commit=self.hf.commit)

    def send(self, channel: str, body: dict | None = None, *, kind: str = "say", text: str | None = None,
             surface: str | None = None, thread: str | None = None, direct: str | None = None,
             to: str | None = None, work: str | None = None, reply_to: str | None = None,
             trace_id: str | None = None, causation_id: str | None = None, expires_at: str | None = None,
             interaction_id: str | None = None, ext: dict | None = None, id: str | None = None) -> JSON:
        """``handoff send``: one envelope; ``text`` is shorthand for a say body's text."""
        payload = dict(body) if body is not None else ({"text": text} if text else {})
        if text and body is not None:
            payload.setdefault("text", text)
        now = clock.now_ms()
        result = self._write(lambda st, s: message_ops.send(
            st, s, workspace_id=self.ws.workspace_id, now_ms=now, channel=channel, kind=kind, body=payload,
            surface=surface, thread=thread, direct=direct, to=to, work=work, reply_to=reply_to, trace_id=trace_id,
            causation_id=causation_id, expires_at=expires_at, given_id=id, interaction_id=interaction_id, ext=ext,
            fresh=clock.new_ulid()))
        return {**queries.message(result.events[0]), **write_meta(result)}

    def inbox(self, *, all: bool = False, ack: list[str] | None = None) -> JSON:
        """``handoff inbox``: what waits for this session.  Reading never changes it; ``ack`` records local acks."""
        from handoff.store.local import add_acks, read_acks
        st = self.hf.state()
        s = self._me(st)
        now = clock.now_ms()
        acked = read_acks(self.ws, s["session_id"])
        from handoff.index import for_inbox
        if not (all or ack):  # what waits, only: acknowledged messages are never read
            entries = queries.inbox(for_inbox(st, s, skip=acked), s, acked, now)
            return {"session_id": s["session_id"], "peer_id": s["peer_id"], "count": len(entries),
                    "entries": entries}
        st = for_inbox(st, s)  # only the messages the inbox looks at, straight from the index
        entries = queries.inbox(st, s, acked, now, include_all=True)
        if ack:
            known = {e["id"] for e in entries}
            wanted = sorted(known) if list(ack) == ["all"] else list(ack)
            unknown = [a for a in wanted if a not in known]
            if unknown:
                raise HandoffError("not_found", f"not in this session's inbox: {', '.join(unknown)}",
                                   hint="see the ids with `handoff inbox --all`")
            add_acks(self.ws, s["session_id"], wanted)
            acked |= set(wanted)
            entries = queries.inbox(st, s, acked, now, include_all=True)
        if not all:
            entries = [e for e in entries if not (e["answered"] or e["acked"] or e["expired"])]
        return {"session_id": s["session_id"], "peer_id": s["peer_id"], "count": len(entries), "entries": entries}

    def ack(self, *message_ids: str) -> JSON:
        return self.inbox(ack=list(message_ids))

    def request(self, to: str, channel: str, description: str, *, context: dict | None = None,
                work: str | None = None, deadline: str | None = None, thread: str | None = None,
                direct: bool = False, trace_id: str | None = None, id: str | None = None) -> JSON:
        """``handoff request``: open a handoff carrying a context bundle; returns the handoff view."""
        now = clock.now_ms()
        result = self._write(lambda st, s: work_ops.request(
            st, s, workspace_id=self.ws.workspace_id, now_ms=now, to=to, channel=channel, description=description,
            context=context or {}, work=work, deadline=deadline, thread=thread, direct=direct, given_id=id,
            trace_id=trace_id, fresh=clock.new_ulid()))
        w = self.ws.state()["work"][result.events[0]["work_id"]]
        return {**views.handoff_view(w, now), **write_meta(result)}

    def _move(self, builder) -> JSON:
        result = self._write(builder)
        ev = result.events[-1]
        w = self.ws.state()["work"].get(ev.get("work_id")) if ev.get("work_id") else None
        return {"work": views.work_payload(w, clock.now_ms(), history=False) if w else None,
                "events": [queries.message(e) for e in result.events], **write_meta(result)}

    def accept(self, handoff_id: str, message: str | None = None, *, id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.accept(st, s, handoff_id, message=message, given_id=id))

    def reject(self, handoff_id: str, reason: str, *, code: str = "busy", id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.reject(st, s, handoff_id, reason=reason, code=code, given_id=id))

    def progress(self, handoff_id: str, message: str | None = None, *, checkpoint: dict | None = None,
                 id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.trace(st, s, handoff_id, "working", message=message,
                                                  checkpoint=checkpoint, given_id=id))

    def need_input(self, handoff_id: str, message: str | None = None, *, id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.trace(st, s, handoff_id, "needs_input", message=message, given_id=id))

    def reply(self, handoff_id: str, text: str, *, id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.reply(st, s, handoff_id, text=text, given_id=id))

    def complete(self, handoff_id: str, message: str | None = None, *, result: dict | None = None,
                 id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.trace(st, s, handoff_id, "completed", message=message, result=result,
                                                  given_id=id))

    def fail(self, handoff_id: str, message: str | None = None, *, result: dict | None = None,
             id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.trace(st, s, handoff_id, "failed", message=message, result=result,
                                                  given_id=id))

    def cancel(self, handoff_id: str, message: str | None = None, *, id: str | None = None) -> JSON:
        return self._move(lambda st, s: work_ops.cancel(st, s, handoff_id, message=message, given_id=id))

    def close(self) -> JSON:
        result = self.ws.write(lambda st: session_ops.session_close(st, self._me(st, write=True)), commit=self.hf.commit)
        return {"session_id": result.events[0]["session_id"], "state": "closed", **write_meta(result)}

    # --------------------------------------------------------------- reads
    def brief(self, *, limit: int = 8) -> JSON:
        """``handoff brief``: what a fresh agent session needs first."""
        from handoff.index import for_inbox
        from handoff.store.local import read_acks
        from handoff.views import brief
        st = self.hf.state()
        s = self._me(st)
        acked = read_acks(self.ws, s["session_id"])
        # (its inbox part reads only this session's messages from the index, as `handoff inbox` does)
        return brief.build(for_inbox(st, s, skip=acked), s, acked, clock.now_ms(), limit=limit)

    def work(self, state: str | None = "open") -> list[JSON]:
        """The work this session is in (default: open work)."""
        return self.hf.work_list(state=state, session=self.ident)

    def watch(self, *, consumer: str | None = None, timeout: float | None = None, remind_every: float = 0,
              remind_max: int = 0) -> Iterator[JSON]:
        """``handoff watch`` as a generator: each new inbox entry (or reminder, or lost claim) once.

        ``consumer`` names a cursor kept under the git dir, like ``handoff watch --consumer``: what
        was delivered to it is not delivered again, even by a later process.  An entry counts as
        delivered when the loop asks for the next one, so a crash while handling it repeats it
        (at least once).  Without a consumer, everything waiting now comes first.  ``timeout``:
        stop after that many seconds without news (None: never).  Blocks on file events.
        """
        from handoff import index
        from handoff.app.watch import install_memo, make_watcher
        from handoff.core import delivery
        from handoff.store import local
        sid = self.info()["session_id"]
        seen = local.read_cursor(self.ws, sid, consumer) if consumer else set()
        install_memo(self.ws)
        with local.registered_watcher(self.ws, [sid]):
            fw = make_watcher(self.ws, None)
            try:
                quiet_since = time.monotonic()
                while True:
                    st = self.ws.state(refresh=True)
                    s = session_ops.session_for(st, sid, write=False)
                    every = int(remind_every * 1000)
                    # (as the watcher: only this session's messages, only units with a deadline for it)
                    notes = delivery.due(index.for_inbox(st, s), s, acked=local.read_acks(self.ws, sid),
                                         delivered=seen, now_ms=clock.now_ms(),
                                         remind_every_ms=every, remind_max=remind_max,
                                         units=index.timer_units(st, [s]) if every > 0 and remind_max > 0 else None)
                    for n in notes:
                        yield n
                        seen.add(n["key"])
                        if consumer:
                            local.record_cursor(self.ws, sid, consumer, [n["key"]])
                    if notes:
                        quiet_since = time.monotonic()
                    left = None if timeout is None else timeout - (time.monotonic() - quiet_since)
                    if left is not None and left <= 0:
                        return
                    fw.wait(left)
            finally:
                fw.stop()
