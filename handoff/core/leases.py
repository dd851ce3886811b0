"""Claims with leases on work units (AGH task leases, Hivemind locks), as a pure fold.

A lease is advisory: it says who is working on a unit right now, so two
sessions of the same agent do not both pick up a handoff addressed to the
agent, and a crashed worker's unit can be taken over once its lease lapses.

Events (``model.LEASE_KINDS``): ``claim`` and ``heartbeat`` carry
``body.lease_until``; ``release`` ends the holder's lease.  The reducer
collects them in event order (``state["leases"]``); ``fold`` replays them:

- a claim wins if nobody holds the unit, or the holder is the claimant, or
  the holder's lease had lapsed *at the claim's own timestamp*; otherwise it
  is a losing claim (``lease_held``), recorded with the winner's name;
- a heartbeat renews the holder's lease if it had not lapsed at the
  heartbeat's timestamp (``no_lease`` / ``lease_expired`` otherwise);
- a release by the holder frees the unit (``no_lease`` otherwise);
- only participants may claim: the initiator, the target, or — while a unit
  addressed to an agent name is not yet bound — any session of that agent
  (``not_participant`` otherwise); nothing after a terminal state counts
  (``work_closed``).

Every decision is taken against timestamps inside the events, so two
branches that both claimed give the same winner on every machine once
merged: the first claim in event order.  Whether the resulting lease is
still live is a question about *now*, which callers pass explicitly.

The CLI refuses at write time exactly what ``fold`` would flag (``check``
runs the fold with the draft appended), like ``lifecycle`` does for work.
"""
from __future__ import annotations

import re
from typing import Any

from handoff.core.arguments import duration_ms
from handoff.core.model import LEASE_KINDS, TERMINAL_STATES, format_ts, parse_ts
from handoff.errors import HandoffError

DEFAULT_LEASE_MS = 10 * 60 * 1000
MAX_LEASE_MS = 7 * 24 * 3600 * 1000


def _eligible(state: dict[str, Any], work: dict[str, Any], peer: str) -> bool:
    if peer in (work["opened_by_peer_id"], work["target_peer_id"]):
        return True
    agent = next((s["agent"] for s in state["sessions"].values() if s["peer_id"] == peer), None)
    return bool(work.get("target_agent")) and agent == work["target_agent"]


def _terminal_hlc(work: dict[str, Any]) -> str | None:
    """The ts at which the unit became terminal (lease events after it do not count)."""
    return work.get("terminal_at") if work["state"] in TERMINAL_STATES else None


def fold(state: dict[str, Any], work: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Replay the lease events of one unit (in event order) into its lease record."""
    holder: str | None = None
    until: int | None = None
    since: str | None = None
    claim_id = None
    history, conflicts = [], []
    terminal_at = _terminal_hlc(work)

    def flag(ev: dict[str, Any], code: str, message: str) -> None:
        conflicts.append({"event_id": ev["id"], "kind": ev["kind"], "from": ev["from"], "ts": ev["ts"],
                          "reason_code": code, "message": message, "holder": holder})

    for ev in events:
        kind, peer, ts = ev["kind"], ev["from"], ev["ts"]
        ts_ms = parse_ts(ts) or 0
        lease_until = (ev.get("body") or {}).get("lease_until")
        live = holder is not None and until is not None and until > ts_ms
        if terminal_at is not None and ts >= terminal_at:
            flag(ev, "work_closed", f"{work['work_id']} was already {work['state']}")
            continue
        if kind == "claim":
            if not _eligible(state, work, peer):
                flag(ev, "not_participant", f"{peer} is not a participant of {work['work_id']}")
                continue
            if live and holder != peer:
                flag(ev, "lease_held", f"{work['work_id']} was held by {holder} until {format_ts(until or 0)}")  # (live: until is set)
                continue
            if holder != peer or not live:
                since, claim_id = ts, ev["id"]
            holder, until = peer, parse_ts(lease_until)
        elif kind == "heartbeat":
            if holder != peer:
                flag(ev, "no_lease", f"{peer} did not hold {work['work_id']}"
                     + (f" ({holder} did)" if holder else ""))
                continue
            if not live:
                flag(ev, "lease_expired", f"the lease of {peer} had lapsed at {format_ts(until or 0)}")
                continue
            until = parse_ts(lease_until)
        elif kind == "release":
            if holder != peer or not live:
                flag(ev, "no_lease", f"{peer} held no live lease on {work['work_id']}")
                continue
            holder = until = since = claim_id = None
        history.append({"event_id": ev["id"], "kind": kind, "from": peer, "ts": ts,
                        "lease_until": lease_until})
    return {"work_id": work["work_id"], "holder": holder, "lease_until": format_ts(until) if until else None,
            "_until_ms": until, "held_since": since, "claim_id": claim_id, "history": history,
            "conflicts": conflicts}


def events_for(state: dict[str, Any], work_id: str) -> list[dict[str, Any]]:
    return [ev for ev in state.get("leases", []) if ev.get("work_id") == work_id]


def view(state: dict[str, Any], work: dict[str, Any], now_ms: int, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The lease of one unit as of ``now_ms``: holder (None when free or lapsed), expiry, losers.
    (``events``: the unit's lease events, when the caller already has them.)"""
    rec = fold(state, work, events_for(state, work["work_id"]) if events is None else events)
    until = rec.pop("_until_ms")
    active = rec["holder"] is not None and until is not None and until > now_ms and \
        work["state"] not in TERMINAL_STATES
    rec["active"] = active
    rec["expired"] = rec["holder"] is not None and not active and work["state"] not in TERMINAL_STATES
    rec["last_holder"] = rec["holder"]
    if not active:
        rec["holder"] = None
    rec["losers"] = [c for c in rec["conflicts"] if c["kind"] == "claim" and c["reason_code"] == "lease_held"]
    return rec


def all_views(state: dict[str, Any], now_ms: int) -> dict[str, dict[str, Any]]:
    """``view`` of every unit that has lease events, by work id (sorted)."""
    return views_for(state, now_ms)


def views_for(state: dict[str, Any], now_ms: int, wids: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """``all_views`` restricted to the units in ``wids`` (all when None); lease events grouped in one pass."""
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for ev in state.get("leases", []):
        wid = ev.get("work_id")
        if wid and (wids is None or wid in wids):
            by_unit.setdefault(wid, []).append(ev)
    out = {}
    for wid in sorted(by_unit):
        w = state["work"].get(wid)
        if w is not None:
            out[wid] = view(state, w, now_ms, by_unit[wid])
    return out


def claimed_by(state: dict[str, Any], peer: str) -> set[str]:
    """Units ``peer`` ever claimed: the only ones where it can have lost a claim (``view``'s ``losers``)."""
    return {ev["work_id"] for ev in state.get("leases", [])
            if ev.get("work_id") and ev["kind"] == "claim" and ev["from"] == peer}


# ------------------------------------------------------------------ writes


def parse_lease(value: str | None) -> int:
    """``--lease`` (90s, 10m, 2h, 1d or seconds) in milliseconds, bounded."""
    if value is None:
        return DEFAULT_LEASE_MS
    ms = duration_ms(value)
    if not ms:
        raise HandoffError("invalid_argument", f"lease {value!r} is not a positive duration",
                           hint="use 90s, 10m, 2h, 1d or a number of seconds")
    if ms > MAX_LEASE_MS:
        raise HandoffError("invalid_argument", "a lease is at most 7 days", hint="heartbeat to extend it instead")
    return int(ms)


def draft(state: dict[str, Any], session: dict[str, Any], work: dict[str, Any], kind: str, *, now_ms: int, lease_ms: int | None,
          given_id: str | None) -> dict[str, Any]:
    """One lease event from ``session`` on ``work``; refused now exactly as ``fold`` would flag it."""
    if kind not in LEASE_KINDS:
        raise ValueError(kind)
    body: dict[str, Any] = {}
    if kind != "release":
        lease_ms = lease_ms or DEFAULT_LEASE_MS
        body = {"lease_until": format_ts(now_ms + lease_ms), "lease_seconds": lease_ms // 1000}
    d = {"kind": kind, "from": session["peer_id"], "session_id": session["session_id"],
         "work_id": work["work_id"], "body": body}
    if given_id is not None:
        m = re.fullmatch(r"(?:msg|evt)_([0-9a-hjkmnp-tv-z]{26})", given_id)
        if m:
            d["id"] = f"evt_{m[1]}"
        elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", given_id):
            d["ext"] = {"idempotency_key": given_id}
        else:
            raise HandoffError("invalid_id", f"--idempotency-key {given_id!r} is not a valid idempotency key",
                               hint="use letters, digits, '.', '_', ':' or '-'")
        original = _replay(state, d, given_id)
        if original is not None:
            return {"_replay": original}
    probe = dict(d, id="evt_" + "z" * 26, ts=format_ts(now_ms), hlc="9" * 16 + "-99999")
    if work["state"] in TERMINAL_STATES:
        raise HandoffError("work_closed", f"{work['work_id']} is already {work['state']}",
                           hint="leases only make sense on open work")
    rec = fold(state, work, events_for(state, work["work_id"]) + [probe])
    for c in rec["conflicts"]:
        if c["event_id"] == probe["id"]:
            raise HandoffError(c["reason_code"], c["message"], hint=_HINTS.get(c["reason_code"], ""),
                               details={"holder": c["holder"]} if c["holder"] else None)
    return d


_HINTS = {
    "lease_held": "wait for the holder to release it or for the lease to lapse (see `handoff work status`)",
    "no_lease": "claim the work first with `handoff claim ID`",
    "lease_expired": "the lease lapsed; claim it again with `handoff claim ID`",
    "not_participant": "only the initiator, the target or a session of the target agent may claim work",
}


def _replay(state: dict[str, Any], d: dict[str, Any], key: str | None) -> dict[str, Any] | None:
    if not key:
        return None
    for ev in state.get("leases", []):
        ekey = (ev.get("ext") or {}).get("idempotency_key")
        if ev["id"] == d.get("id") or (ekey == key and ev["from"] == d["from"]):
            same = (ev["kind"], ev["from"], ev.get("work_id"), (ev.get("body") or {}).get("lease_seconds")) == \
                   (d["kind"], d["from"], d["work_id"], d["body"].get("lease_seconds"))
            if same:
                original: dict[str, Any] = ev
                return original
            raise HandoffError("id_conflict", f"{key!r} was already used for a different event ({ev['id']})",
                               hint="use a new --idempotency-key for a new claim; re-run the identical command to retry")
    return None
