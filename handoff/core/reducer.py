"""From a set of event files to state: a pure, order-independent fold.

``decode`` turns one file's bytes into a record (the event or a diagnostic);
``reduce`` folds records into state.  Neither touches files, git, clocks or
the environment, so the same set of files gives the same state on every
machine, whatever order they were listed in and however branches merged.

Order is computed from content only: causal parents (``after``) first, then
the hybrid logical clock, then the id.
"""
from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from handoff.core import approvals, ids, lifecycle
from handoff.core.model import (
    CONVERSATION_KINDS,
    ENVELOPE_KINDS,
    TERMINAL_STATES,
    EventError,
    check_event,
    check_name,
    parse_hlc,
    parse_ts,
)
from handoff.core.yaml import codec

REDUCER_VERSION = 1
PREVIEW_CHARS = 120


def decode(rel_path: str, data: bytes) -> dict[str, Any]:
    """One file -> ``{"path", "event"}`` or ``{"path", "error": {reason_code, message}}``."""
    try:
        ev = codec.load(data)
        check_event(ev)
        check_name(rel_path, ev)
    except codec.CodecError as exc:
        return {"path": rel_path, "error": {"reason_code": "malformed", "message": str(exc)}}
    except EventError as exc:
        return {"path": rel_path, "error": {"reason_code": exc.reason_code, "message": exc.message}}
    return {"path": rel_path, "event": ev}


def _canon(ev: dict[str, Any]) -> str:
    return json.dumps(ev, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def order_events(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Topological order over ``after`` links, ties broken by (hlc, id).

    Returns the ordered events and the ids caught in a cycle (appended last).
    """
    by_id = {ev["id"]: ev for ev in events}
    ids, cyclic = order_keys({ev["id"]: (ev["hlc"], ev.get("after", [])) for ev in events})
    return [by_id[i] for i in ids], cyclic


def order_keys(keys: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``order_events`` on ordering keys only: ``{id: (hlc, after)}`` -> (ids in event order, cyclic ids).

    (The index orders 100,000 events this way without holding the events themselves.)
    """
    children: dict[str, list[str]] = {}
    pending: dict[str, int] = {}
    heap = []
    for eid, (hlc, after) in keys.items():
        n = 0
        if after:
            for p in set(after):
                if p in keys and p != eid:
                    n += 1
                    children.setdefault(p, []).append(eid)
        if n:
            pending[eid] = n
        else:
            heap.append((hlc, eid))
    heapq.heapify(heap)
    out = []
    while heap:
        _, eid = heapq.heappop(heap)
        out.append(eid)
        for child in children.get(eid, ()):
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(heap, (keys[child][0], child))
    cyclic = sorted((keys[eid][0], eid) for eid, n in pending.items() if n > 0)
    return out + [eid for _, eid in cyclic], [eid for _, eid in cyclic]


def _preview(body: dict[str, Any] | None) -> str | None:
    body = body or {}
    text = body.get("text") or body.get("message") or body.get("detail") or body.get("status") or body.get("state")
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def dedupe(records: list[dict[str, Any]], diagnostics: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One event per id.  Files of the current branch (no ``ref``) win over files read from remote refs,
    whatever their content, so an unreviewed branch can neither replace, hide nor reorder a reviewed
    event by reusing its id; among equals the first in canonical order is applied.  Every file of a
    clash with other content is named in a diagnostic."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if "event" in rec:
            by_id.setdefault(rec["event"]["id"], []).append(rec)
    events, paths = [], {}
    for eid in sorted(by_id):
        recs = by_id[eid]
        if len(recs) > 1:
            recs = sorted(recs, key=lambda r: ("ref" in r, _canon(r["event"]), r["path"]))
        keep = recs[0]
        events.append(keep["event"])
        paths[eid] = keep["path"]
        clashing = [r for r in recs[1:] if _canon(r["event"]) != _canon(keep["event"])]
        for other in clashing:
            if "ref" in other and "ref" not in keep:
                message = (f"id {eid} is already used on this branch by {keep['path']}; this file from "
                           f"{other['ref']} has other content and is ignored (the reviewed event wins)")
            else:
                message = f"id {eid} also used by {keep['path']} with different content; ignored"
            diagnostics.append({"path": other["path"], "id": eid, "reason_code": "id_conflict", "message": message})
        if clashing:  # name every file of the clash: which one is genuine is for a reviewer to decide
            others = ", ".join(r["path"] + (f" (on {r['ref']})" if "ref" in r else "") for r in clashing)
            rule = "it is on this branch" if "ref" not in keep and any("ref" in r for r in clashing) else \
                "the first in canonical order"
            diagnostics.append({"path": keep["path"], "id": eid, "reason_code": "id_conflict",
                                "message": f"id {eid} also used with different content by {others}; this file "
                                           f"was applied ({rule})"})
    return events, paths


def reduce(records: list[dict[str, Any]], admins: Iterable[str] = (),
           policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fold decoded records into state (plain dicts, JSON-ready).

    ``admins``: agents that may close any session (``identity.admins``); ``policy``: ``approvals.policy_of``.
    """
    diagnostics = [{"path": r["path"], "id": None, **r["error"]} for r in records if "error" in r]
    events, paths = dedupe(records, diagnostics)
    ordered, cyclic = order_events(events)
    for eid in cyclic:
        diagnostics.append({"path": paths[eid], "id": eid, "reason_code": "malformed",
                            "message": "causal links (after) form a cycle; ordered by clock instead"})
    acc = new_fold(admins, policy)
    acc["diagnostics"] = diagnostics
    remote = {r["event"]["id"] for r in records if "ref" in r and "event" in r and paths[r["event"]["id"]] == r["path"]}
    opens = local_first([ev for ev in ordered if ev["kind"] == "session-open"], lambda ev: ev["id"] in remote)
    fold(acc, ordered, paths, identities=opens)
    threads, directs, work = acc["threads"], acc["directs"], acc["work"]
    for w in work.values():
        if w["state"] not in TERMINAL_STATES:
            kind, key = work_box(w)
            box = (threads if kind == "thread" else directs).get(key)
            if box is not None:
                box["open_work_count"] += 1
    for box in list(threads.values()) + list(directs.values()):
        finish_box(box)
    diagnostics.sort(key=diagnostic_key)
    return {
        "reducer_version": REDUCER_VERSION,
        "sessions": acc["sessions"],
        "messages": acc["messages"],
        "threads": threads,
        "directs": directs,
        "work": work,
        "leases": acc["leases"],
        "diagnostics": diagnostics,
        "counters": acc["counters"],
        "max_hlc": max((ev["hlc"] for ev in events), default=None),
        "event_count": len(events),
    }


# The fold is split out so the index (handoff/index/fold.py, refold.py) can resume it: it loads the saved
# accumulator (lazily), folds only new events that sort after everything already folded, and finishes the
# boxes it touched.


def local_first(opens: list[Any], is_remote: Callable[[Any], bool]) -> list[Any]:
    """Session-opens (or their ids) in event order, this branch's first: a session's owner is its first
    opener on this branch, and only ids this branch never opens go to an open read from a remote ref."""
    return [o for o in opens if not is_remote(o)] + [o for o in opens if is_remote(o)]


def new_fold(admins: Iterable[str] = (), policy: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"sessions": {}, "agent_by_peer": {}, "messages": [], "threads": {}, "directs": {}, "work": {},
            "leases": [], "diagnostics": [], "counters": {"transitions": 0}, "admins": sorted(set(admins)),
            "approvals": policy or approvals.EMPTY}


def work_box(w: dict[str, Any]) -> tuple[str, str]:
    """("thread", "<channel>/<thread_id>") or ("direct", direct_id): where a work unit's open count is shown."""
    if w["surface"] == "thread":
        return "thread", f"{w['channel']}/{w['thread_id']}"
    return "direct", w["direct_id"]


def finish_box(box: dict[str, Any]) -> None:
    box["participant_count"] = len(box["participants"])
    box["participants"] = sorted(box["participants"])
    if "_last_body" in box:  # (the preview is made once, of the last message, not of every message)
        box["last_message_preview"] = _preview(box.pop("_last_body"))


def diagnostic_key(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["path"], d.get("id") or "", d["reason_code"])


def fold(acc: dict[str, Any], ordered: Iterable[dict[str, Any]], paths: Mapping[str, str],
         identities: Iterable[dict[str, Any]] | None = None) -> None:
    """Apply ``ordered`` events (already deduplicated and in event order) to the accumulator ``acc``.

    ``ordered`` is iterated twice unless ``identities`` gives its session-open events (in the same order)
    for the first pass; ``paths[id]`` is asked only for the event being folded.

    Session rules (see docs/DESIGN.md, "Who owns a session"): a session id belongs to the first
    session-open of it in event order; a later open of the same id is not applied
    (``session_taken``) unless it is the owner's own, which reopens a closed session when its
    ``body.reopens`` names the close that closed it last, and a session-close is applied only when its sender is the session's own
    peer, another session of the same agent, or an agent in ``acc["admins"]`` (``not_session_owner``).
    """
    sessions: dict[str, dict[str, Any]] = acc["sessions"]
    agent_by_peer: dict[str, str] = acc["agent_by_peer"]
    for ev in ordered if identities is None else identities:  # first pass: identities, independent of order
        if ev["kind"] == "session-open" and ev["session_id"] not in sessions:
            body = ev["body"]
            sessions[ev["session_id"]] = {
                "session_id": ev["session_id"], "peer_id": ev["from"], "agent": body["agent"],
                "name": body.get("name"), "channels": list(body.get("channels", [])),
                "workspace": body.get("workspace"), "state": "active", "opened_at": ev["ts"],
                "opened_hlc": ev["hlc"], "closed_at": None, "last_activity_at": ev["ts"],
                "open_event_id": ev["id"]}
            agent_by_peer.setdefault(ev["from"], body["agent"])

    def agent_of(peer: str) -> str | None:
        return agent_by_peer.get(peer)

    messages: list[dict[str, Any]] = acc["messages"]
    threads = acc["threads"]
    directs = acc["directs"]
    work = acc["work"]
    leases: list[dict[str, Any]] = acc["leases"]
    diagnostics: list[dict[str, Any]] = acc["diagnostics"]
    counters = acc["counters"]
    orphans: list[dict[str, Any]] = []
    session_by_peer = {s["peer_id"]: s for s in sessions.values()}

    admins = acc.get("admins") or ()
    policy = acc.get("approvals")

    for ev in ordered:
        kind = ev["kind"]
        if kind in ("session-open", "session-close"):
            refusal = _session_refusal(ev, sessions.get(ev["session_id"]), agent_of, admins)
            if refusal is not None:  # not applied: it touches neither the session nor its activity
                diagnostics.append({"path": paths[ev["id"]], "id": ev["id"], "reason_code": refusal[0],
                                    "message": refusal[1]})
                continue
        sess = sessions.get(ev.get("session_id") or "") or session_by_peer.get(ev["from"])
        if sess is not None and ev["ts"] > sess["last_activity_at"]:
            sess["last_activity_at"] = ev["ts"]
        if kind == "session-close":
            s = sessions.get(ev["session_id"])
            if s is not None and s["state"] != "closed":
                s.update(state="closed", closed_at=ev["ts"], close_event_id=ev["id"])
            continue
        if kind == "session-open":  # the owner opening it again: a reopen undoes the close it names, if still last
            s = sessions.get(ev["session_id"])
            reopens = (ev.get("body") or {}).get("reopens")
            if s is not None and reopens and s["state"] == "closed" and s.get("close_event_id") == reopens:
                s.update(state="active", closed_at=None, close_event_id=None, reopened_at=ev["ts"],
                         reopen_event_id=ev["id"])
            continue
        if kind in ("claim", "heartbeat", "release"):
            leases.append(ev)
            continue
        if kind == approvals.KIND:  # a person's decision on a gate (not a message)
            refusal = approvals.fold_into(work, counters, ev, policy)
            if refusal is not None:
                diagnostics.append({"path": paths[ev["id"]], "id": ev["id"], "reason_code": refusal[0],
                                    "message": refusal[1]})
            continue
        if kind not in ENVELOPE_KINDS:
            continue
        msg = dict(ev, path=paths[ev["id"]], refused=None)
        if ev.get("surface") == "direct" and not _room_matches(ev):
            entry = {"path": msg["path"], "id": ev["id"], "reason_code": "invalid_surface",
                     "message": f"direct_id {ev['direct_id']} is not the room of {ev['from']} and {ev['to']}"}
            diagnostics.append(entry)
            continue
        if kind in CONVERSATION_KINDS and ev.get("work_id"):
            wid = ev["work_id"]
            before = work.get(wid)
            to_agent = (ev.get("body") or {}).get("target_kind") == "agent"
            after_work, refusal = lifecycle.apply(before, ev, agent_of, lambda _to: to_agent)  # noqa: B023 (called here)
            if before is None and after_work is not None:  # a request may open a person's gate
                after_work = approvals.on_request(after_work, ev, policy)
            if after_work is not None:
                if before is None or after_work["state"] != before["state"]:
                    counters["transitions"] += 1
                work[wid] = after_work
            if refusal is not None:
                msg["refused"] = refusal[0]
                entry = {"path": msg["path"], "id": ev["id"], "reason_code": refusal[0], "message": refusal[1]}
                if after_work is None:
                    orphans.append(entry)
                diagnostics.append(entry)
        messages.append(msg)
        if kind in CONVERSATION_KINDS:
            _account_container(msg, threads, directs)


def _session_refusal(ev: dict[str, Any], owner: dict[str, Any] | None, agent_of: Callable[[str], str | None],
                     admins: Collection[str]) -> tuple[str, str] | None:
    """Why a session-open or session-close is not applied to the session it names (None: applied)."""
    if owner is None:
        return None
    if ev["kind"] == "session-open":
        if ev["id"] == owner["open_event_id"] or (ev["from"], ev["body"]["agent"]) == (owner["peer_id"], owner["agent"]):
            return None  # (the same identity opening it again, e.g. two clones with the same --id: harmless)
        return ("session_taken", f"session {ev['session_id']} already belongs to {owner['peer_id']} (agent "
                                 f"{owner['agent']!r}, opened by {owner['open_event_id']}); this second open is ignored")
    closer = agent_of(ev["from"])
    if ev["from"] == owner["peer_id"] or (closer is not None and (closer == owner["agent"] or closer in admins)):
        return None
    return ("not_session_owner", f"{ev['from']} (agent {closer!r}) may not close session {ev['session_id']} of "
                                 f"agent {owner['agent']!r}; only that agent or an identity.admins agent may")


def _account_container(msg: dict[str, Any], threads: dict[str, Any], directs: dict[str, Any]) -> None:
    if msg["surface"] == "thread":
        key = f"{msg['channel']}/{msg['thread_id']}"
        box = threads.get(key)
        if box is None:
            box = threads[key] = {
                "thread_id": msg["thread_id"], "channel": msg["channel"], "root_message_id": msg["id"],
                "title": (msg.get("body") or {}).get("title"), "opened_by_peer_id": msg["from"],
                "opened_session_id": msg.get("session_id"), "opened_at": msg["ts"],
                "participants": set(), "message_count": 0, "open_work_count": 0}
    else:
        key = msg["direct_id"]
        box = directs.get(key)
        if box is None:
            a, b = sorted((msg["from"], msg["to"]))
            box = directs[key] = {
                "direct_id": key, "channel": msg["channel"], "peer_a": a, "peer_b": b,
                "opened_at": msg["ts"], "participants": set(), "message_count": 0, "open_work_count": 0}
    box["participants"].add(msg["from"])
    box["message_count"] += 1
    box["last_activity_at"] = msg["ts"]
    box["last_message_id"] = msg["id"]
    box["_last_body"] = msg.get("body")


def _room_matches(ev: dict[str, Any]) -> bool:
    try:
        return bool(ids.direct_id(ev["workspace_id"], ev["channel"], ev["from"], ev["to"]) == ev["direct_id"])
    except Exception:
        return False


FUTURE_TOLERANCE_MS = 24 * 3600 * 1000


def clock_diagnostics(records: list[dict[str, Any]], now_ms: int, tolerance_ms: int = FUTURE_TOLERANCE_MS) -> list[dict[str, Any]]:
    """Events dated more than ``tolerance_ms`` ahead of ``now_ms`` (by ts, clock or id).

    They still take part in ordering (content decides order, the same on
    every machine); the diagnostic tells a reader that a clock was wrong or
    someone tried to sort their event after everyone else's.
    """
    out = []
    for rec in records:
        ev = rec.get("event")
        if ev is None:
            continue
        hlc = parse_hlc(ev.get("hlc"))
        try:
            id_ms = ids.ulid_ms(ev["id"].split("_", 1)[1])
        except (ValueError, IndexError):
            id_ms = 0
        latest = max(hlc[0] if hlc else 0, parse_ts(ev.get("ts")) or 0, id_ms)
        if latest > now_ms + tolerance_ms:
            out.append({"path": rec["path"], "id": ev["id"], "reason_code": "future_timestamp",
                        "message": f"dated {ev.get('ts')}, more than a day ahead of this machine's clock"})
    return out


def expired(ev: dict[str, Any], now_ms: int) -> bool:
    exp = parse_ts(ev.get("expires_at")) if ev.get("expires_at") is not None else None
    return exp is not None and exp <= now_ms
