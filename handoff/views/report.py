"""What a branch did, for a pull request: built from the state at base and at head.

Pure.  ``build`` compares two reduced states (the merge base and the branch
tip) and the ids of the events the branch added; ``markdown`` renders it for
a PR description.  ``views.html.page`` draws the same sections as one page.
"""
from __future__ import annotations

import html

from handoff.core import queries
from handoff.core.model import TERMINAL_STATES

TEXT_WIDTH = 90


def build(base_state: dict, head_state: dict, new_ids: set[str]) -> dict:
    agent = _agent_namer(head_state)
    base_work = base_state["work"]
    opened, answered, closed, touched = [], [], [], []
    for wid, w in sorted(head_state["work"].items(), key=lambda kv: (kv[1]["opened_at"], kv[0])):
        mine = [h for h in w["history"] if h["message_id"] in new_ids]
        if not mine:
            continue
        before = base_work.get(wid)
        row = _work_row(w, before, mine, agent)
        touched.append(row)
        if w["opener_id"] in new_ids:
            opened.append(row)
        if any(h["from"] == w["target_peer_id"] and not h["refused"] and h["message_id"] != w["opener_id"]
               for h in mine):
            answered.append(row)
        if any(not h["refused"] and h["state_after"] in TERMINAL_STATES and h["state_before"] not in TERMINAL_STATES
               for h in mine):
            closed.append(row)
    return {
        "events": len(new_ids),
        "sessions": [{"peer_id": s["peer_id"], "agent": s["agent"], "channels": s["channels"]}
                     for s in head_state["sessions"].values() if s["open_event_id"] in new_ids],
        "opened": opened, "answered": answered, "closed": closed, "work": touched,
        "threads": _containers(head_state, new_ids),
        "metrics": pair_metrics([head_state["work"][r["work_id"]] for r in touched], agent),
        "refused": [d for d in head_state["diagnostics"] if d.get("id") in new_ids],
        "approvals": _approvals(head_state, touched, new_ids),
    }


def _approvals(state: dict, touched: list[dict], new_ids: set[str]) -> dict:
    """A person's checkpoints (core/approvals.py): the decisions this branch added, and the gates still open."""
    decided, waiting = [], []
    for r in touched:
        w = state["work"][r["work_id"]]
        for g in w.get("gates") or ():
            if g.get("decision_id") in new_ids:
                decided.append({"work_id": w["work_id"], "gate": g["name"], "decision": g["state"],
                                "by": g["decided_by"], "at": g["decided_at"], "reason": g.get("reason")})
        gate = w.get("gate")
        if gate and gate["state"] == "awaiting_approval" and w["state"] not in TERMINAL_STATES:
            waiting.append({"work_id": w["work_id"], "gate": gate["name"], "approver": gate.get("approver"),
                            "since": gate["opened_at"]})
    return {"decided": decided, "awaiting": waiting}


def _agent_namer(state: dict):
    by_peer = queries.agent_by_peer(state)
    return lambda peer: by_peer.get(peer) or (peer or "?").split(".", 1)[0]


def _work_row(w: dict, before: dict | None, mine: list[dict], agent) -> dict:
    ctx = w.get("context") or {}
    return {"work_id": w["work_id"], "from": w["opened_by_peer_id"], "to": w["target_peer_id"],
            "from_agent": agent(w["opened_by_peer_id"]), "to_agent": w.get("target_agent") or agent(w["target_peer_id"]),
            "channel": w["channel"], "container": w.get("thread_id") or w.get("direct_id"),
            "state_before": before["state"] if before else None, "state": w["state"],
            "description": w.get("description"), "events": len(mine),
            "files_changed": ctx.get("files_changed") if isinstance(ctx, dict) else None,
            "result": w.get("result")}


def _containers(state: dict, new_ids: set[str]) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for m in state["messages"]:
        if m["id"] not in new_ids or m.get("surface") not in ("thread", "direct"):
            continue
        key = (m["channel"], m["surface"], m.get("thread_id") or m.get("direct_id"))
        row = rows.setdefault(key, {"channel": key[0], "surface": key[1], "id": key[2], "new_messages": 0,
                                    "senders": set()})
        row["new_messages"] += 1
        row["senders"].add(m["from"])
    return [dict(r, senders=sorted(r["senders"])) for _k, r in sorted(rows.items())]


def pair_metrics(work_units: list[dict], agent=lambda p: p) -> list[dict]:
    """Per (initiator agent, target agent): the same figures as ``handoff metrics``, over these units only."""
    from handoff.views.metrics import pair_figures
    pairs: dict[tuple[str, str], list[dict]] = {}
    for w in sorted(work_units, key=lambda w: (w["opened_at"], w["work_id"])):
        key = (agent(w["opened_by_peer_id"]), w.get("target_agent") or agent(w["target_peer_id"]))
        pairs.setdefault(key, []).append(w)
    return [{"from": a, "to": b, **pair_figures(units)} for (a, b), units in sorted(pairs.items())]


# ----------------------------------------------------------------- markdown


def md(text, width: int = TEXT_WIDTH) -> str:
    """Untrusted text made inert for a Markdown table cell (no HTML, no pipes, no mentions, one line)."""
    s = " ".join(("" if text is None else str(text)).split())
    if len(s) > width:
        s = s[: width - 1] + "…"
    s = html.escape(s, quote=False).replace("|", "\\|").replace("`", "'").replace("@", "&#64;")
    return "".join(ch if ch.isprintable() else " " for ch in s)


def states_walked(r: dict) -> str:
    return f"{r['state_before']} → {r['state']}" if r["state_before"] and r["state_before"] != r["state"] \
        else ("new → " + r["state"] if not r["state_before"] else r["state"])


def markdown(rep: dict) -> str:
    head = rep.get("branch") or rep.get("head", "")[:12]
    since = rep.get("against") or "the start of history"
    lines = [f"## Handoff activity on `{md(head)}`", "",
             f"{rep['events']} new handoff event(s) since `{md(since)}` (base `{rep.get('base', '')[:12]}`): "
             f"{len(rep['opened'])} opened, {len(rep['answered'])} answered, {len(rep['closed'])} closed.", ""]
    if not rep["events"]:
        lines.append("_No handoff activity on this branch._")
        return "\n".join(lines) + "\n"
    for title, key in (("Opened", "opened"), ("Answered", "answered"), ("Closed", "closed")):
        rows = rep[key]
        if not rows:
            continue
        lines += [f"### {title} ({len(rows)})", "", "| work | from → to | channel | state | description |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{md(r['work_id'])}` | {md(r['from_agent'])} → {md(r['to_agent'])} | #{md(r['channel'])} "
                  f"| {md(r['state'])} | {md(r['description'])} |" for r in rows]
        lines.append("")
    lines += [f"### Work units touched ({len(rep['work'])})", "", "| work | state | events on this branch |",
              "|---|---|---|"]
    lines += [f"| `{md(r['work_id'])}` | {md(states_walked(r))} | {r['events']} |" for r in rep["work"]] or ["| – | – | – |"]
    lines.append("")
    if rep["threads"]:
        lines += [f"### Threads touched ({len(rep['threads'])})", "", "| channel | container | new messages | senders |",
                  "|---|---|---|---|"]
        lines += [f"| #{md(t['channel'])} | {md(t['surface'])} `{md(t['id'])}` | {t['new_messages']} | "
                  f"{md(', '.join(t['senders']))} |" for t in rep["threads"]]
        lines.append("")
    if rep["sessions"]:
        lines += [f"### Sessions opened ({len(rep['sessions'])})", ""]
        lines += [f"- {md(s['agent'])} (`{md(s['peer_id'])}`) in {md(', '.join('#' + c for c in s['channels']))}"
                  for s in rep["sessions"]]
        lines.append("")
    gates = rep.get("approvals") or {}
    if gates.get("decided") or gates.get("awaiting"):
        lines += ["### Person checkpoints", ""]
        lines += [f"- `{md(a['work_id'])}` gate {md(a['gate'])}: **{md(a['decision'])}** by {md(a['by'])}"
                  + (f" ({md(a['reason'])})" if a.get("reason") else "") for a in gates.get("decided", [])]
        lines += [f"- `{md(a['work_id'])}` gate {md(a['gate'])}: waiting for a person since {md(a['since'])}"
                  + (f" ({md(a['approver'])})" if a.get("approver") else "") for a in gates.get("awaiting", [])]
        lines.append("")
    if rep["refused"]:
        lines += [f"### Refused by the protocol ({len(rep['refused'])})", ""]
        lines += [f"- `{md(d['reason_code'])}`: {md(d['message'])}" for d in rep["refused"]]
        lines.append("")
    return "\n".join(lines)
