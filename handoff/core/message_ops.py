"""Sending one envelope: per-kind rules, its container (thread or direct room), lifecycle refusals.

A draft is an event without ``protocol``, ``workspace_id``, ``ts`` and
``hlc`` (the shell stamps those).  Every rule that can refuse a write is
checked here, against the same ``lifecycle.apply`` the reducer uses, so the
CLI refuses exactly what a reader would flag.
"""
from __future__ import annotations

import json
import re
from typing import Any

from handoff.core import ids, lifecycle, queries
from handoff.core.arguments import check_ref, parse_time
from handoff.core.model import CONVERSATION_KINDS, ENVELOPE_KINDS, MAX_TEXT, parse_ts
from handoff.core.retries import apply_idempotency, find_prior, replay_or_none
from handoff.errors import HandoffError

KIND_ALIASES = {"request": ("say", "request"), "handoff": ("say", "handoff"), "question": ("say", "question"),
                "notice": ("say", "notice"), "summary": ("say", "summary")}


def send(state: dict[str, Any], session: dict[str, Any], *, workspace_id: str, now_ms: int, channel: str, kind: str,
         body: dict[str, Any], surface: str | None = None, thread: str | None = None, direct: str | None = None,
         to: str | None = None, work: str | None = None, reply_to: str | None = None, trace_id: str | None = None,
         causation_id: str | None = None, expires_at: str | None = None, given_id: str | None = None,
         interaction_id: str | None = None, ext: dict[str, Any] | None = None, new_thread_hint: str | None = None,
         fresh: str | None = None) -> list[dict[str, Any]]:
    """One envelope from ``session``, with every AGH per-kind and lifecycle rule checked.

    ``fresh`` is a new ULID from the shell, for a thread this message has to open (the core draws no
    randomness itself)."""
    ids.check_id("channel", channel)
    if kind == "direct":
        raise HandoffError("unsupported_kind", "kind 'direct' was removed from AGH Network",
                           hint="send kind say with --surface direct --to PEER")
    body = dict(body)
    if kind in KIND_ALIASES:  # seed 000's `--kind request` and friends
        kind, intent = KIND_ALIASES[kind]
        body.setdefault("intent", intent)
        if not body.get("text"):
            body["text"] = str(body.get("task") or body.get("description") or json.dumps(body, sort_keys=True))
    if kind not in ENVELOPE_KINDS:
        raise HandoffError("unsupported_kind", f"kind {kind!r} is not an envelope kind",
                           hint=f"use one of {', '.join(ENVELOPE_KINDS)} (or the alias 'request')")
    if interaction_id is not None:
        check_ref(interaction_id, "interaction id")
        trace_id = trace_id or interaction_id
    if to is not None:
        if not (ids.is_valid("peer", to)):
            ids.check_id("peer", to)
    if work is not None:
        ids.check_id("work", work)
    for value, what in ((reply_to, "reply-to"), (trace_id, "trace id"), (causation_id, "causation id")):
        check_ref(value, what)
    if isinstance(body.get("text"), str) and len(body["text"]) > MAX_TEXT:
        raise HandoffError("body_too_large", f"text is over {MAX_TEXT} characters", hint="shorten it")
    draft: dict[str, Any] = {"kind": kind, "channel": channel, "from": session["peer_id"], "session_id": session["session_id"],
                   "to": to, "work_id": work, "reply_to": reply_to, "trace_id": trace_id,
                   "causation_id": causation_id, "body": body, "ext": dict(ext) if ext else None,
                   "expires_at": parse_time(expires_at, now_ms, "--expires-at")}
    if draft["expires_at"] is not None and (parse_ts(draft["expires_at"]) or 0) <= now_ms:
        raise HandoffError("expired", f"--expires-at {expires_at} is not in the future",
                           hint="receivers drop expired messages; give a later time or a duration like 30m")
    existing = state["work"].get(work) if work else None
    if given_id and thread is None and direct is None and surface != "direct":
        prior = find_prior(state, given_id, session["peer_id"])
        if prior is not None and prior.get("thread_id") and prior["channel"] == channel:
            thread = prior["thread_id"]  # a retry lands in the thread the original opened, not a fresh one
    if kind in CONVERSATION_KINDS:
        _place(draft, state, session, workspace_id, surface, thread, direct, existing, interaction_id,
               new_thread_hint, fresh)
    elif surface or thread or direct:
        raise HandoffError("invalid_surface", f"{kind} is not a conversation message: no surface, thread or direct",
                           hint="drop --surface/--thread/--direct")
    key = apply_idempotency(draft, given_id)
    original = replay_or_none(state, draft, key)
    if original is not None:
        return [{"_replay": original}]
    if kind in CONVERSATION_KINDS and work:
        check_lifecycle(state, draft)
        draft["after"] = parents(state, draft, existing)
    elif reply_to or causation_id:
        draft["after"] = parents(state, draft, None)
    return [draft]


def _place(draft: dict[str, Any], state: dict[str, Any], session: dict[str, Any], workspace_id: str, surface: str | None, thread: str | None,
           direct: str | None, existing: dict[str, Any] | None, interaction_id: str | None, hint: str | None,
           fresh: str | None) -> None:
    """Decide the container: explicit flags, else the work's own container, else a new or derived thread."""
    if surface not in (None, "thread", "direct"):
        raise HandoffError("invalid_surface", f"surface must be 'thread' or 'direct', not {surface!r}",
                           hint="use --surface thread --thread ID or --surface direct --to PEER")
    if thread and direct:
        raise HandoffError("invalid_surface", "give --thread or --direct, not both", hint="a message lives in one container")
    if surface is None:
        surface = "direct" if direct else "thread" if thread else (existing["surface"] if existing else "thread")
    if surface == "thread":
        if direct:
            raise HandoffError("invalid_surface", "--direct given with surface thread", hint="drop one of them")
        if thread is None:
            if existing and existing["surface"] == "thread" and existing["channel"] == draft["channel"]:
                thread = existing["thread_id"]
            else:
                thread = _derived_thread(interaction_id or hint, fresh)
        ids.check_id("thread", thread)
        draft.update(surface="thread", thread_id=thread)
    else:
        if thread:
            raise HandoffError("invalid_surface", "--thread given with surface direct", hint="drop one of them")
        to = draft.get("to")
        if direct is None and existing and existing["surface"] == "direct":
            direct = existing["direct_id"]
            if to is None:
                to = _counterparty(existing, draft["from"])
        if to is None:
            raise HandoffError("invalid_surface", "a direct-room message needs --to PEER",
                               hint="name the other peer with --to")
        room = ids.direct_id(workspace_id, draft["channel"], draft["from"], to)
        if direct is not None:
            ids.check_id("direct", direct)
            if direct != room:
                raise HandoffError("conversation_not_found", f"{direct} is not the room of {draft['from']} and {to}",
                                   hint="a direct room has exactly two peers; see `handoff directs resolve`")
        draft.update(surface="direct", direct_id=room, to=to)


def _derived_thread(seed: str | None, fresh: str | None) -> str:
    if seed:
        slug = re.sub(r"[^a-z0-9_-]+", "-", seed.lower()).strip("-_")[:90]
        if len(slug) >= 3:
            return f"thread_{slug}"
    if fresh is None:
        raise ValueError("a new thread needs a fresh ULID from the caller")
    return f"thread_{fresh}"


def _counterparty(work: dict[str, Any], peer: str) -> str:
    return str(work["target_peer_id"] if peer == work["opened_by_peer_id"] else work["opened_by_peer_id"])


def check_lifecycle(state: dict[str, Any], draft: dict[str, Any]) -> None:
    """Refuse, before anything is written, what the reducer would flag."""
    work = state["work"].get(draft["work_id"])
    probe = dict(draft, id="msg_probe", ts="9999-12-31T23:59:59.999Z", hlc="9" * 16 + "-00000")
    _, refusal = lifecycle.apply(work, probe, queries.agent_by_peer(state).get,
                                 lambda to: (draft.get("body") or {}).get("target_kind") == "agent")
    if refusal is not None:
        code, message = refusal
        hints = {
            "work_closed": "terminal states are final; open a new work_id for follow-up work",
            "work_container_mismatch": "continue in the work's own container, or open a new work_id there",
            "not_target": "only the work's initiator and target may act on it",
            "work_not_found": "open the work first with a say or capability carrying --work and --to",
            "invalid_transition": "check the work's state with `handoff work status ID`",
            "already_responded": "the handoff was already answered",
            "awaiting_approval": f"a person decides first: `handoff approve {draft['work_id']}` (or `handoff deny "
                                 f"{draft['work_id']} --reason ...`); `handoff wait {draft['work_id']}` returns when "
                                 "they have; `handoff work lookup` shows who may approve",
        }
        if code == "work_not_found":
            raise HandoffError("work_not_found", message, hint=hints[code])
        raise HandoffError(code, message, hint=hints.get(code, ""))
    if work is None and draft["kind"] in ("say", "capability"):
        if _work_id_used(state, draft["work_id"]):
            raise HandoffError("work_exists", f"{draft['work_id']} is already used", hint="pick a new work id")


def parents(state: dict[str, Any], draft: dict[str, Any], work: dict[str, Any] | None) -> list[str] | None:
    """The draft's ``after``: the work's last applied message and the messages it answers (None: none)."""
    found = set()
    if work is not None:
        applied = [h["message_id"] for h in work["history"] if not h["refused"]]
        if applied:
            found.add(applied[-1])
    for key in ("reply_to", "causation_id"):
        if draft.get(key) and _has_message(state, draft[key]):
            found.add(draft[key])
    return sorted(found) or None


# The state may be the index's lazy view (index.State): its message list answers these from an index
# instead of a scan.  A plain list (reducer.reduce's output) is scanned.

def _has_message(state: dict[str, Any], mid: str) -> bool:
    msgs = state["messages"]
    if hasattr(msgs, "has_id"):
        return bool(msgs.has_id(mid))
    return any(m["id"] == mid for m in msgs)


def _work_id_used(state: dict[str, Any], wid: str) -> bool:
    msgs = state["messages"]
    if hasattr(msgs, "uses_work"):
        return bool(msgs.uses_work(wid))
    return any(m.get("work_id") == wid for m in msgs)
