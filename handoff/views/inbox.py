"""``handoff inbox`` as text (pure).

What waits comes first, one line per entry (an ``accept``'s trace folded into
its receipt); a ``need-input`` question reads ``asks: ...`` with the command
that answers it; updates on ended work this session asked for are news,
listed apart with the command that clears them.
"""
from __future__ import annotations

from handoff.core import queries
from handoff.views import render


def body_text(body: dict | None) -> str:
    """The words of a message body: its text, message, detail, status or state (the first there)."""
    body = body or {}
    for key in ("text", "message", "detail", "status", "state"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return ""


def _open(e: dict) -> bool:
    return not (e.get("answered") or e.get("acked") or e.get("expired"))


def human(d: dict) -> str:
    gated = [f"  waits for a person's approval: {g['work_id']} at gate {render.safe(g['gate'])} since {g['since']}"
             + (f" ({render.safe(g['approver'])})" if g.get("approver") else "")
             for g in d.get("awaiting_approval") or ()]  # (core/approvals.py: agents cannot approve)
    return "\n".join([_human(d), *gated])


def _human(d: dict) -> str:
    entries = d["entries"]
    if not entries:
        return f"inbox of {render.safe(d['peer_id'])}: empty"
    shown = {e["id"] for e in entries}
    folded = {e["folded_into"]: e for e in entries if e.get("folded_into") in shown}
    lines = queries.distinct(entries)
    news = [e for e in lines if e.get("news") and _open(e)]
    rest = [e for e in lines if not (e.get("news") and _open(e))]
    waiting = d.get("waiting", sum(1 for e in rest if _open(e)))
    head = f"{waiting} waiting" + (f" · {d.get('news', len(news))} news" if news else "")
    if any(not _open(e) for e in entries):  # --all: say what the list holds and what of it waits
        head = f"{len(lines)} entries · " + head
    s_flag = f"--session {d['session_id']}"
    out = [f"inbox of {render.safe(d['peer_id'])}: {head}"]
    for e in rest:
        out += _entry(e, folded.get(e["id"]), d["peer_id"], s_flag)
    if news:
        out.append("News (work you asked for has ended: nothing to answer; ack to clear):")
        groups: dict[str, list[dict]] = {}
        for e in news:
            groups.setdefault(e["work"]["work_id"], []).append(e)
        for wid, group in groups.items():
            last = group[-1]
            more = f" (+{len(group) - 1} earlier)" if len(group) > 1 else ""
            out += _entry(last, folded.get(last["id"]), d["peer_id"], s_flag, more=more)
            ids = [i for e in group for i in (e["id"], *([folded[e["id"]]["id"]] if e["id"] in folded else []))]
            out.append(f"    $ handoff inbox {s_flag} " + " ".join(f"--ack {i}" for i in ids)
                       + f"   (or: handoff work lookup {wid})")
    return "\n".join(out)


def _entry(e: dict, trace: dict | None, peer: str, s_flag: str, *, more: str = "") -> list[str]:
    w = e.get("work")
    flags = [f for f in ("answered", "acked", "expired") if e.get(f)]
    where = f" [{w['work_id']}: {render.state_words(w.get('status'), w['state'])}]" if w else ""
    also = f" (+ trace {trace['id']})" if trace else ""
    out = [f"- {e['id']} {e['kind']} from {render.safe(e['from'])} in #{e['channel']}{where}{also}{more}"
           + (f" ({', '.join(flags)})" if flags else "")]
    text = body_text(e.get("body"))
    if trace is not None and body_text(trace.get("body")) not in ("", "accepted", text):
        text = f"{text}: {body_text(trace.get('body'))}"
    if e.get("asks") is not None:
        out.append(f"    asks: {render.one_line(e['asks'] or '(no text)')}")
        if w and w["state"] == "needs_input" and w["opened_by_peer_id"] == peer and _open(e):
            out.append(f'    $ handoff reply {w["work_id"]} {s_flag} -m "..."')
    else:
        out.append(f"    {render.one_line(text)}")
    return out
