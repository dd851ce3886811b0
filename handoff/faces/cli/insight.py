"""``handoff metrics`` and ``handoff log``: what happened, in figures and as an audit trail."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.views import render

from .apps import app
from .common import Cx, command


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.0%}" if isinstance(v, float) and v <= 1 else str(v)


def _metrics_human(d: dict) -> str:
    rows = [{**p, "pair": f"{p['from_agent']} -> {p['to_agent']}",
             "success": _fmt(p["success_rate"]), "accept_s": p["mean_acceptance_s"]} for p in d["pairs"]]
    out = [render.table(rows, ["pair", "volume", "accepted", "rejected", "pending", "success", "accept_s",
                               "completed", "failed", "canceled"], empty="(no handoffs)"), ""]
    out.append(render.table(d["channels"], ["channel", "messages", "messages_refused", "work", "open_work", "threads",
                                            "directs"], empty="(no channels)"))
    return "\n".join(out)


@command(app, "metrics")
def metrics(cx: Cx, channel: Annotated[Optional[str], typer.Option("--channel", "-c", help="only this channel")] = None):
    """Handoff figures per (initiator agent, target agent) pair, and counters per channel.

    Every work unit counts as a handoff from its initiator to its target; a peer counts as its
    session's agent.  JSON shape (stable):

    \b
      {"pairs": [{"from_agent", "to_agent", "volume", "accepted", "rejected",
                  "pending", "withdrawn", "open", "completed", "failed", "canceled",
                  "success_rate", "mean_acceptance_s", "median_acceptance_s",
                  "completion_rate", "mean_time_to_terminal_s", "gated",
                  "median_approval_wait_ms"}, ...],
       "totals": {the same figures over every pair},
       "channels": [{"channel", "messages", "messages_by_kind", "messages_refused",
                     "work", "open_work", "threads", "directs"}, ...]}

    success_rate = accepted / (accepted + rejected); acceptance time = accepted_at - opened_at
    (seconds); completion_rate = completed / accepted units that ended; time to terminal =
    terminal_at - opened_at.  Rates and means are null when there is nothing to measure;
    withdrawn = ended before any answer; gated = units that waited for a person's approval,
    median_approval_wait_ms over their decided gates.  Lists are sorted by agent pair / channel name.

    \b
    Example:
      handoff metrics -o json
    """
    cx.emit(cx.hf.metrics(channel), _metrics_human)


def _log_human(d: dict) -> str:
    if not d["entries"]:
        return "(no events)"
    lines = []
    for e in d["entries"]:
        commit = e["commit"]
        where = f"{commit['sha'][:10]} {commit['author_name']}" if commit else "uncommitted"
        head = f"{e['ts']}  {e['event']}  {e['from']}" + (f" -> {e['to']}" if e.get("to") else "")
        if e.get("work_id"):
            head += f"  [{e['work_id']}" + (f" {e['work_state']}" if e.get("work_state") else "") + "]"
        if e.get("refused"):
            head += f"  REFUSED {e['refused']}"
        lines.append(render.safe(head) + f"  ({render.safe(where)})")
        if e.get("summary"):
            lines.append("    " + render.one_line(e["summary"]))
    return "\n".join(lines)


@command(app, "log")
def log(cx: Cx,
        work: Annotated[Optional[str], typer.Option("--work", "-w", help="only this work unit")] = None,
        thread: Annotated[Optional[str], typer.Option("--thread", "-t", help="only this public thread")] = None,
        trace: Annotated[Optional[str], typer.Option("--trace", "--trace-id", help="a whole flow: its trace_id, "
                                                     "and every event of work opened with it")] = None,
        session: Annotated[Optional[str], typer.Option("--session", "-s", help="only what this session wrote")] = None,
        channel: Annotated[Optional[str], typer.Option("--channel", "-c", help="only this channel")] = None):
    """The audit timeline in event order, each entry with the commit that added its file.

    Each entry (-o jsonl: one per line), filters combined (all must match):

    \b
      {"seq", "event", "id", "kind", "ts", "hlc", "from", "agent", "session_id", "to",
       "channel", "surface", "thread_id", "direct_id", "work_id", "trace_id", "reply_to",
       "causation_id", "status", "work_state", "refused", "summary", "path",
       "commit": {"sha", "author_name", "author_email", "date"} | null (uncommitted)}

    seq is the position in the whole history.  event is the export name:
    agent.handoff.requested|accepted|rejected (Hivemind), work.trace.<state>,
    work.receipt.<status>, network.<kind>, session.opened|closed, work.claim|heartbeat|release.

    \b
    Example:
      handoff log --trace trace_release_20260416 -o jsonl
    """
    data = cx.hf.log(work=work, thread=thread, trace=trace, session=session, channel=channel)
    cx.emit(data, _log_human)
