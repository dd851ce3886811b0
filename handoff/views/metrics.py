"""Handoff metrics per agent pair and counters per channel (pure: state -> dict).

Every work unit is a handoff from its initiator to its target (``request``
is a ``say`` that opens one; so is any ``send --work W --to P``).  Pairs are
keyed by agent, not by session: the agent of a peer is its session's agent;
a unit addressed to an agent name that no session has answered yet counts
for that agent name; a peer with no known session counts as itself.

Figures (Hivemind's dashboard, made precise):

- ``volume``: work units opened; ``accepted`` / ``rejected`` / ``pending`` /
  ``withdrawn``: by first response (``withdrawn`` = ended before any answer);
- ``success_rate`` = accepted / (accepted + rejected), null when neither;
- ``mean_acceptance_s`` / ``median_acceptance_s``: accepted_at - opened_at,
  over accepted units (a target trace working / needs_input / completed
  without a receipt counts as the acceptance);
- ``open``, ``completed``, ``failed``, ``canceled``: units by current state;
- ``completion_rate`` = completed / accepted units that have ended, null when
  none has;
- ``mean_time_to_terminal_s``: terminal_at - opened_at over ended units;
- ``gated``: units that waited at a person's gate (core/approvals.py);
  ``median_approval_wait_ms``: decided_at - opened_at of every decided gate.

Rates are rounded to 4 decimals, durations to milliseconds.
"""
from __future__ import annotations

import statistics

from handoff.core import queries
from handoff.core.model import TERMINAL_STATES, parse_ts
from handoff.views.payloads import handoff_status

PAIR_FIELDS = ("volume", "accepted", "rejected", "pending", "withdrawn", "open", "completed", "failed", "canceled",
               "success_rate", "mean_acceptance_s", "median_acceptance_s", "completion_rate",
               "mean_time_to_terminal_s", "gated", "median_approval_wait_ms")
CHANNEL_FIELDS = ("channel", "messages", "messages_by_kind", "messages_refused", "work", "open_work", "threads",
                  "directs")


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    return None if a is None or b is None else (b - a) / 1000


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 3) if xs else None


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _approval_wait(units: list[dict]) -> int | None:
    waits = [b - a for w in units for g in w.get("gates") or () if g.get("decided_at")
             for a, b in [(parse_ts(g["opened_at"]), parse_ts(g["decided_at"]))] if a is not None and b is not None]
    return int(statistics.median(waits)) if waits else None


def pair_figures(units: list[dict]) -> dict:
    status = [handoff_status(w) for w in units]
    accepted = [w for w, s in zip(units, status) if s == "accepted"]
    rejected = status.count("rejected")
    acceptance = [t for t in (_seconds(w["opened_at"], w.get("accepted_at")) for w in accepted) if t is not None]
    ended = [w for w in units if w["state"] in TERMINAL_STATES]
    ended_accepted = [w for w in accepted if w["state"] in TERMINAL_STATES]
    to_terminal = [t for t in (_seconds(w["opened_at"], w.get("terminal_at")) for w in ended) if t is not None]
    out = {
        "volume": len(units),
        "accepted": len(accepted),
        "rejected": rejected,
        "pending": status.count("pending"),
        "withdrawn": sum(1 for w, s in zip(units, status) if s in TERMINAL_STATES),
        "open": len(units) - len(ended),
        "completed": sum(1 for w in units if w["state"] == "completed"),
        "failed": sum(1 for w in units if w["state"] == "failed"),
        "canceled": sum(1 for w in units if w["state"] == "canceled"),
        "success_rate": _rate(len(accepted), len(accepted) + rejected),
        "mean_acceptance_s": _mean(acceptance),
        "median_acceptance_s": _median(acceptance),
        "completion_rate": _rate(sum(1 for w in ended_accepted if w["state"] == "completed"), len(ended_accepted)),
        "mean_time_to_terminal_s": _mean(to_terminal),
        "gated": sum(1 for w in units if w.get("gates")),
        "median_approval_wait_ms": _approval_wait(units),
    }
    return {k: out[k] for k in PAIR_FIELDS}


def work_parties(state: dict):
    """(initiator, target): a work unit's two agents; a peer of no known session stands for itself."""
    by_peer = queries.agent_by_peer(state)

    def initiator(w: dict) -> str:
        return by_peer.get(w["opened_by_peer_id"], w["opened_by_peer_id"])

    def target(w: dict) -> str:
        peer = w["target_peer_id"]
        if peer in by_peer:
            return by_peer[peer]
        return w.get("target_agent") or peer

    return initiator, target


def compute(state: dict, channel: str | None = None) -> dict:
    """``{"pairs": [...], "totals": {...}, "channels": [...]}``, every list sorted."""
    units = [w for w in state["work"].values() if channel is None or w["channel"] == channel]
    units.sort(key=lambda w: (w["opened_at"], w["work_id"]))
    initiator, target = work_parties(state)
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for w in units:
        by_pair.setdefault((initiator(w), target(w)), []).append(w)
    pairs = [{"from_agent": a, "to_agent": b, **pair_figures(ws)} for (a, b), ws in sorted(by_pair.items())]
    return {"pairs": pairs, "totals": pair_figures(units), "channels": channel_counters(state, channel)}


def channel_counters(state: dict, only: str | None = None) -> list[dict]:
    chans: dict[str, dict] = {}

    def get(name: str) -> dict:
        return chans.setdefault(name, {"channel": name, "messages": 0, "messages_by_kind": {}, "messages_refused": 0,
                                       "work": 0, "open_work": 0, "threads": 0, "directs": 0})

    for s in state["sessions"].values():
        for c in s["channels"]:
            get(c)
    for m in state["messages"]:
        ch = get(m["channel"])
        ch["messages"] += 1
        ch["messages_by_kind"][m["kind"]] = ch["messages_by_kind"].get(m["kind"], 0) + 1
        if m.get("refused"):
            ch["messages_refused"] += 1
    for w in state["work"].values():
        ch = get(w["channel"])
        ch["work"] += 1
        if w["state"] not in TERMINAL_STATES:
            ch["open_work"] += 1
    for b in state["threads"].values():
        get(b["channel"])["threads"] += 1
    for b in state["directs"].values():
        get(b["channel"])["directs"] += 1
    out = []
    for name in sorted(chans):
        if only is not None and name != only:
            continue
        ch = chans[name]
        ch["messages_by_kind"] = dict(sorted(ch["messages_by_kind"].items()))
        out.append({k: ch[k] for k in CHANNEL_FIELDS})
    return out
