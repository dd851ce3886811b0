"""An event log in memory, for tests of the pure core and views: no repository, no clock, no randomness.

Drafts from the ``*_ops`` builders are stamped the way ``Workspace._stamp`` does (protocol, workspace,
id, ts, hlc), checked with ``model.check_event`` and kept in a list; ``state()`` reduces them with the
real reducer.  Time moves one second per event from a fixed start.
"""
from __future__ import annotations

from handoff.core import ids, message_ops, model, reducer, session_ops, work_ops

WORKSPACE = "ws_test"
START = "2030-01-01T00:00:00Z"


class Log:
    def __init__(self, start: str = START, workspace_id: str = WORKSPACE):
        self.now = model.parse_ts(start)
        self.workspace_id = workspace_id
        self.events: list[dict] = []
        self._seq = 0

    # ------------------------------------------------------------ the log
    def records(self, events: list[dict] | None = None) -> list[dict]:
        return [{"path": model.event_path(ev), "event": ev} for ev in (self.events if events is None else events)]

    def state(self, events: list[dict] | None = None) -> dict:
        return reducer.reduce(self.records(events))

    def fresh(self) -> str:
        self._seq += 1
        return ids.new_ulid(self.now, self._seq)

    def write(self, drafts: list[dict]) -> list[dict]:
        """Stamp and keep ``drafts``; a ``_replay`` draft is returned as it is (nothing is written)."""
        out: list[dict] = []
        written: list[dict] = []
        for d in drafts:
            if "_replay" in d:
                out.append(d)
                continue
            self.now += 1000
            ev = {k: v for k, v in d.items() if v is not None and not k.startswith("_")}
            ev["protocol"] = model.PROTOCOL
            ev["workspace_id"] = self.workspace_id
            ev.setdefault("id", model.new_event_id(ev["kind"], self.fresh()))
            ev["ts"] = model.format_ts(self.now)
            ev["hlc"] = model.format_hlc(self.now, 0)
            ev.setdefault("body", {})
            if written and ev.get("after"):
                ev["after"] = sorted({written[-1]["id"] if a == "msg_probe" else a for a in ev["after"]})
            model.check_event(ev)
            self.events.append(ev)
            written.append(ev)
            out.append(ev)
        return out

    # ------------------------------------------------------ the usual moves
    def open(self, agent: str, *channels: str, sid: str | None = None, name: str | None = None) -> dict:
        sid = sid or f"sess_{agent}"
        self.write(session_ops.session_open(self.state(), agent=agent, channels=list(channels), name=name,
                                            session_id=sid, workspace=None))
        return self.session(sid)

    def session(self, ident: str, *, write: bool = True) -> dict:
        return session_ops.session_for(self.state(), ident, write=write)

    def send(self, sid: str, channel: str = "dev", text: str = "hi", **kw) -> dict:
        kw.setdefault("kind", "say")
        body = kw.pop("body", {"text": text})
        drafts = message_ops.send(self.state(), self.session(sid), workspace_id=self.workspace_id, now_ms=self.now,
                                  channel=channel, body=body, fresh=self.fresh(), **kw)
        return self.write(drafts)[0]

    def request(self, sid: str, to: str, channel: str = "dev", description: str = "do it", **kw) -> dict:
        kw.setdefault("context", None)
        kw.setdefault("work", None)
        kw.setdefault("deadline", None)
        kw.setdefault("thread", None)
        kw.setdefault("direct", False)
        kw.setdefault("given_id", None)
        drafts = work_ops.request(self.state(), self.session(sid), workspace_id=self.workspace_id, now_ms=self.now,
                                  to=to, channel=channel, description=description, fresh=self.fresh(), **kw)
        return self.write(drafts)[0]

    def verb(self, name: str, sid: str, work_id: str, *args, **kw) -> list[dict]:
        return self.write(getattr(work_ops, name)(self.state(), self.session(sid), work_id, *args, **kw))
