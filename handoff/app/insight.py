"""What happened, in figures (``metrics``) and as an audit trail with commits (``log``)."""
from __future__ import annotations

from handoff.app.workspace import Workspace


def metrics(ws: Workspace, channel: str | None = None) -> dict:
    """``handoff metrics``: figures per (initiator agent, target agent) pair and counters per channel."""
    from handoff.core import ids
    from handoff.views.metrics import compute
    if channel is not None:
        ids.check_id("channel", channel)
    return compute(ws.state(), channel)


def log(ws: Workspace, *, work: str | None = None, thread: str | None = None, trace: str | None = None,
        session: str | None = None, channel: str | None = None) -> dict:
    """``handoff log``: the audit timeline in event order, each entry with the commit that added its file."""
    from handoff.core import reducer
    from handoff.core.checks import admins_of
    from handoff.git.commits import added_by
    from handoff.views import audit
    records = ws.records()
    from handoff.core.approvals import policy_of
    state = reducer.reduce(records, admins_of(ws.config), policy_of(ws.config))
    entries = audit.timeline(records, state, work=work, thread=thread, trace=trace, session=session, channel=channel)
    commits = added_by(ws.paths) if entries else {}
    prefix = ws.root.relative_to(ws.paths.worktree).as_posix()
    for e in entries:
        e["commit"] = commits.get(f"{prefix}/{e['path']}")
    return {"count": len(entries), "entries": entries}
