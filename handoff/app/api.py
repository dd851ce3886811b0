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

The classes only delegate: ``Session`` lives in ``agent.py``; the bodies of the verbs in
``sessions`` (open, close, inbox, brief, status), ``reads`` (lists, conversations), ``leasing``
(claim, heartbeat, release, sweep), ``insight`` (metrics, log), ``review`` (verify, report,
sync) and ``waiting`` (wait, watch).

Reads re-read the files each time (through the parse cache), so a
long-lived ``Handoff`` (an MCP server, an agent loop) sees other processes'
writes.  The CLI passes ``snapshot=True``: one process, one consistent read.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from handoff.app import reads, sessions
from handoff.app.agent import Session
from handoff.app.meta import write_meta
from handoff.app.workspace import Workspace
from handoff.core import session_ops, work_ops
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.views import payloads as views

JSON = dict[str, Any]
__all__ = ["Handoff", "Session", "write_meta"]


class Handoff:
    """One repository's ``.handoffs/``: reads, the repository-wide verbs, and the factory of sessions.

    ``workspace`` may be a ``Workspace`` or a function making one when a call first needs it (the
    command line's: ``verify``, ``sync``, ``report`` and ``doctor`` run where ``.handoffs/`` is not)."""

    def __init__(self, repo: str | os.PathLike | None = None, *, commit: bool | None = None,
                 workspace: Workspace | Callable[[], Workspace] | None = None, snapshot: bool = False):
        self.repo = None if repo is None else os.fspath(repo)
        self.commit = commit
        self._snapshot = snapshot
        self.initialized: JSON | None = None
        self._ws: Workspace | None = None
        self._make_ws: Callable[[], Workspace] | None = None
        if isinstance(workspace, Workspace):
            self._ws = workspace
        elif workspace is not None:
            self._make_ws = workspace
        else:
            self._ws = Workspace(repo)

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            assert self._make_ws is not None
            self._ws = self._make_ws()
        return self._ws

    @classmethod
    def init(cls, repo: str | os.PathLike | None = None, workspace_id: str | None = None, *,
             commit: bool | None = None) -> Handoff:
        """``handoff init``: create ``.handoffs/`` (harmless twice), then open it (``initialized``: the CLI's JSON)."""
        from handoff.app.init import init_workspace
        result = init_workspace(None if repo is None else os.fspath(repo), workspace_id, commit=commit)
        hf = cls(repo, commit=commit)
        hf.initialized = result  # (the JSON `handoff init` prints)
        return hf

    # --------------------------------------------------------------- reads
    def state(self) -> dict:
        return self.ws.state(refresh=not self._snapshot)

    @property
    def workspace_id(self) -> str:
        return self.ws.workspace_id

    def status(self) -> JSON:
        from handoff.app.batching import pending_count
        from handoff.app.gitstate import uncommitted_events
        return {"workspace_id": self.ws.workspace_id, "repo": str(self.ws.paths.worktree),
                **views.status(self.state()), "uncommitted_events": uncommitted_events(self.ws),
                "commit_mode": self.ws.commit_mode(), "commit_pending": pending_count(self.ws)}

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
        peer = session_ops.session_for(st, session, write=False)["peer_id"] if session else None
        return reads.work_list(st, state, channel, peer)

    def handoff(self, handoff_id: str) -> JSON:
        """``handoff status ID``: Hivemind's view of one handoff."""
        return views.handoff_view(work_ops.find_work(self.state(), handoff_id), clock.now_ms())

    def handoffs(self, to: str | None = None, status: str | None = None, channel: str | None = None) -> list[JSON]:
        """``handoff list``: work opened with ``request``, oldest first."""
        return reads.handoffs(self.state(), to, status, channel)

    def threads(self, channel: str) -> list[JSON]:
        from handoff.core import ids
        ids.check_id("channel", channel)
        return views.threads_in(self.state(), channel)

    def thread(self, channel: str, thread: str) -> JSON:
        """``handoff threads show``: one thread's summary."""
        return views.thread_summary(reads.thread_box(self.state(), channel, thread))

    def messages(self, channel: str, *, thread: str | None = None, direct: str | None = None,
                 kind: str | None = None, work: str | None = None, limit: int | None = None,
                 known: bool = False) -> list[JSON]:
        """A thread's or direct room's messages in event order; ``known``: refuse a conversation that
        is not there (``threads|directs messages``) rather than return none."""
        st = self.state()
        if known and thread is not None and direct is None:
            reads.thread_box(st, channel, thread)
        elif known and direct is not None and thread is None:
            reads.direct_box(st, channel, direct)
        return reads.messages(st, channel, thread=thread, direct=direct, kind=kind, work=work, limit=limit)

    def directs(self, channel: str, session: str | None = None) -> list[JSON]:
        from handoff.core import ids
        ids.check_id("channel", channel)
        st = self.state()
        peer = session_ops.session_for(st, session, write=False)["peer_id"] if session else None
        return reads.directs(st, channel, peer)

    def direct(self, channel: str, direct: str) -> JSON:
        """``handoff directs show``: one direct room's summary."""
        return views.direct_summary(reads.direct_box(self.state(), channel, direct))

    def metrics(self, channel: str | None = None) -> JSON:
        """``handoff metrics``: figures per agent pair and per channel."""
        from handoff.app.insight import metrics
        return metrics(self.ws, channel)

    def log(self, *, work: str | None = None, thread: str | None = None, trace: str | None = None,
            session: str | None = None, channel: str | None = None) -> JSON:
        """``handoff log``: the audit timeline (filters combined), each entry with its commit."""
        from handoff.app.insight import log
        return log(self.ws, work=work, thread=thread, trace=trace, session=session, channel=channel)

    def approve(self, work_id: str, *, reason: str | None = None, by: str | None = None) -> JSON:
        """``handoff approve``: a person lifts the work's open gate (``by``: default git user.email)."""
        from handoff.app.approvals import decide
        return decide(self.ws, work_id, "approved", reason=reason, as_identity=by, commit=self.commit)

    def deny(self, work_id: str, *, reason: str, by: str | None = None) -> JSON:
        """``handoff deny``: a person refuses the work's open gate; the work fails (reason ``denied``)."""
        from handoff.app.approvals import decide
        return decide(self.ws, work_id, "denied", reason=reason, as_identity=by, commit=self.commit)

    def pending_approvals(self) -> list[JSON]:
        """``handoff list --pending-approval``: work waiting for a person, with who may decide."""
        from handoff.app.approvals import pending, policy
        return pending(self.state(), clock.now_ms(), policy(self.ws))

    # ------------------------------------------------- review and exchange
    def verify(self, *, base: str | None = None, against: str | None = None, rev: str | None = None,
               staged: bool = False, all: bool = False, remotes: bool = True) -> JSON:
        """``handoff verify``: ``ok`` false (with ``error``) when the range breaks the rules."""
        from handoff.app.review import verify
        return verify(self.repo, base=base, against=against, rev=rev, staged=staged, everything=all,
                      use_remotes=remotes)

    def report(self, *, base: str | None = None, rev: str | None = None, html: str | os.PathLike | None = None,
               markdown: bool = False) -> JSON:
        """``handoff report``: what this branch opened, answered and closed."""
        from handoff.app.review import report
        return report(self.repo, base=base, rev=rev, html=html, markdown=markdown)

    def sync(self, *, remote: str = "origin", push: bool = True, integrate: str | None = None,
             progress: Callable[[JSON], None] | None = None) -> JSON:
        """``handoff sync``: push this branch's events, fetch everyone's (``progress``: called with each of
        git's transfer progress reports: op, stage, current, total, percent, done, message)."""
        from handoff.app.review import sync
        return sync(self.repo, remote=remote, push=push, integrate=integrate, progress=progress)

    def sync_rounds(self, every: str, count: int | None = None, *, remote: str = "origin", push: bool = True,
                    integrate: str | None = None, progress: Callable[[JSON], None] | None = None
                    ) -> Iterator[tuple[int, JSON | HandoffError]]:
        """``handoff sync --every``: (round, its result or its refusal) per round; the rounds go on."""
        from handoff.app.review import sync_rounds
        return sync_rounds(self.repo, every, count, remote=remote, push=push, integrate=integrate, progress=progress)

    def flush(self, *, after: float | None = None, ticket: str | None = None) -> JSON:
        """``handoff flush``: commit, as one commit, every event file that batched writes (``commit: batch``)
        or an interrupted commit left pending; ``after``: wait that many seconds first (``ticket``: the
        background flusher's, which stops early once another flush took its place)."""
        from handoff.app import batching
        if after is not None or ticket is not None:
            return batching.flush_after(self.ws, after or 0.0, ticket)
        return batching.flush(self.ws)

    def compact(self, *, before: str, dry_run: bool = False) -> JSON:
        """``handoff compact``: seal finished history older than ``before`` (30d, or a time) into archive
        segments and remove its event files, in one commit (counts, segments, commit)."""
        from handoff.app.compact import compact
        return compact(self.ws, before=before, dry_run=dry_run)

    def hooks(self, install: bool = True) -> JSON:
        """``handoff hooks install|uninstall``: the pre-commit hook running ``verify --staged``."""
        from handoff.git import hooks
        return hooks.install(self.repo) if install else hooks.uninstall(self.repo)

    def doctor(self, session: str | None = None) -> JSON:
        """``handoff doctor``: the set-up checked, with a fix for each problem (``ok``)."""
        from handoff.app import doctor
        return doctor.run(self.repo, session)

    # ------------------------------------------------------------- sessions
    def open_session(self, agent: str, channels: list[str] | str, *, name: str | None = None,
                     session_id: str | None = None, workspace: str | None = None, reopen: bool = False) -> Session:
        """``handoff session new``; the returned Session's ``opened`` holds the CLI's JSON.  ``reopen``: a
        closed session of ``session_id`` is reopened (without it, refused with ``session_closed``)."""
        chans = [channels] if isinstance(channels, str) else list(channels)
        opened = sessions.open_session(self.ws, agent, chans, name=name, session_id=session_id,
                                       workspace=workspace, commit=self.commit, reopen=reopen)
        sess = Session(self, opened["session_id"])
        sess.opened = opened
        return sess

    def session(self, ident: str | None = None) -> Session:
        """An existing session by id or peer id (default: ``HANDOFF_SESSION``)."""
        ident = ident or os.environ.get("HANDOFF_SESSION")
        s = session_ops.session_for(self.state(), ident, write=False)
        return Session(self, s["session_id"])

    # ------------------------------------------------------------ blocking
    def watch(self, emit: Callable[[JSON], None], note: Callable[[str], None] = lambda text: None, *,
              reset: bool = False, **options) -> int:
        """``handoff watch``: serve sessions (``sessions=[...]`` or ``all_sessions=True``; the other
        options as ``waiting.watch_options``) until ``once``/``limit``/a signal ends it; ``emit`` gets
        each notification.  For one session in a loop, ``Session.watch`` is simpler."""
        from handoff.app.waiting import watch, watch_options
        opts = watch_options(**options)  # (arguments first: refused before the workspace is opened)
        return watch(self.ws, opts, emit, note, reset=reset)

    def wait(self, work_id: str, timeout: float | None = None, *, until_input: bool = False,
             poll: bool | None = None, until_approved: bool = False) -> JSON:
        """``handoff wait``: block (on file events) until the work is terminal, or needs input with
        ``until_input`` (or waits at a person's gate), or ``timeout`` seconds pass.  ``wait_result`` says
        which: completed, failed, canceled, needs_input, awaiting_approval, timeout, or with
        ``until_approved`` approved (the unit no longer waits at a person's gate) (``waiting.WAIT_EXIT`` maps it to the command's exit code)."""
        from handoff.app.waiting import check_timeout, wait
        check_timeout(timeout)  # (arguments first: refused before the workspace is opened)
        return wait(self.ws, work_id, timeout, until_input=until_input, poll=poll, until_approved=until_approved)
