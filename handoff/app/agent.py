"""``Session``: everything one agent session can do, as plain calls (``handoff.app.api`` explains the API).

Made by ``Handoff.open_session`` / ``Handoff.session`` (or ``Session(handoff, ident)``); cheap, and
resolved again at each call.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from handoff.app import reads, sessions
from handoff.app.meta import write_meta
from handoff.app.workspace import Workspace, WriteResult
from handoff.core import message_ops, queries, session_ops, work_ops
from handoff.store import clock
from handoff.views import payloads as views

JSON = dict[str, Any]


class Session:
    """One agent session: everything it can do.  Cheap to create; resolved at each call."""

    def __init__(self, hf: Any, ident: str | None):
        """``hf``: the ``handoff.app.api.Handoff`` this session acts in."""
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
        return sessions.resolve(self.ws, state, self.ident, write=write)

    def _here(self) -> tuple[dict, dict]:
        st = self.hf.state()
        return st, self._me(st)

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
        return sessions.inbox(self.ws, *self._here(), all=all, ack=ack)

    def ack(self, *message_ids: str) -> JSON:
        return self.inbox(ack=list(message_ids))

    def request(self, to: str, channel: str, description: str, *, context: dict | None = None,
                work: str | None = None, deadline: str | None = None, thread: str | None = None,
                direct: bool = False, trace_id: str | None = None, id: str | None = None,
                approval_by: str | None = None) -> JSON:
        """``handoff request``: open a handoff carrying a context bundle; returns the handoff view.
        ``approval_by``: a person who must approve before the receiver may accept (core/approvals.py)."""
        from handoff.core.approvals import policy_of
        now = clock.now_ms()
        policy = policy_of(self.ws.config)
        result = self._write(lambda st, s: work_ops.request(
            st, s, workspace_id=self.ws.workspace_id, now_ms=now, to=to, channel=channel, description=description,
            context=context or {}, work=work, deadline=deadline, thread=thread, direct=direct, given_id=id,
            trace_id=trace_id, fresh=clock.new_ulid(), approval_by=approval_by, policy=policy))
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
                 id: str | None = None, gate: str | None = None, approval_by: str | None = None) -> JSON:
        """``gate``: ask for a person's checkpoint here; no further progress until approved."""
        from handoff.core.approvals import policy_of
        policy = policy_of(self.ws.config) if gate or approval_by else None
        return self._move(lambda st, s: work_ops.trace(st, s, handoff_id, "working", message=message,
                                                  checkpoint=checkpoint, given_id=id, gate=gate,
                                                  approval_by=approval_by, policy=policy))

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

    def claim(self, work_id: str, lease: str | None = None, *, id: str | None = None) -> JSON:
        """``handoff claim``: hold the work for ``lease`` (90s, 10m, 2h; default 10m)."""
        from handoff.app import leasing
        return leasing.lease(self.ws, "claim", work_id, self.ident, lease, id, commit=self.hf.commit)

    def heartbeat(self, work_id: str, lease: str | None = None, *, id: str | None = None) -> JSON:
        """``handoff heartbeat``: extend a live lease to now + ``lease``."""
        from handoff.app import leasing
        return leasing.lease(self.ws, "heartbeat", work_id, self.ident, lease, id, commit=self.hf.commit)

    def release(self, work_id: str, *, id: str | None = None) -> JSON:
        """``handoff release``: give the lease up."""
        from handoff.app import leasing
        return leasing.lease(self.ws, "release", work_id, self.ident, None, id, commit=self.hf.commit)

    def sweep(self, *, dry_run: bool = False, id: str | None = None) -> JSON:
        """``handoff sweep``: fail (reason expired) the overdue work this session is in."""
        from handoff.app import leasing
        return leasing.sweep(self.ws, self.ident, dry_run=dry_run, given_id=id, commit=self.hf.commit)

    def close(self, *, by: str | None = None, id: str | None = None) -> JSON:
        """``handoff session close``: by this session, or by session ``by`` (same agent, or an admin)."""
        return sessions.close(self.ws, self.ident, by=by, given_id=id, commit=self.hf.commit)

    # --------------------------------------------------------------- reads
    def brief(self, *, limit: int = 8) -> JSON:
        """``handoff brief``: what a fresh agent session needs first."""
        if not self.ident:
            session_ops.session_for({}, None)  # raises the usual no_session error with its hint
        return sessions.brief(self.ws, *self._here(), limit=limit)

    def status(self) -> JSON:
        """``handoff session status``: identity, channels, inbox depth, open work."""
        return sessions.status(self.ws, *self._here())

    def history(self) -> JSON:
        """``handoff session history``: what this session sent and received."""
        return sessions.history(*self._here())

    def events(self, last: int | None = None) -> JSON:
        """``handoff session events``: every event this session wrote."""
        return sessions.events(self.ws, self._here()[1], last)

    def resolve_direct(self, channel: str, peer: str) -> JSON:
        """``handoff directs resolve``: the room id for this session and ``peer`` (writes nothing)."""
        from handoff.core import ids
        ids.check_id("channel", channel)
        ids.check_id("peer", peer)
        st = self.hf.state()
        return reads.resolve_direct(st, self.ws.workspace_id, channel, session_ops.session_for(st, self.ident, write=False),
                                    peer)

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
        from handoff.app.waiting import follow
        return follow(self.ws, self.info()["session_id"], consumer=consumer, timeout=timeout,
                      remind_every=remind_every, remind_max=remind_max)
