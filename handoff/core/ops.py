"""What each write command means, as pure functions from state to event drafts.

A draft is an event without ``protocol``, ``workspace_id``, ``ts`` and
``hlc`` (the shell stamps those).  Every rule that can refuse a write is
checked here, against the same ``lifecycle.apply`` the reducer uses, so the
CLI refuses exactly what a reader would flag.
"""
from __future__ import annotations

import json
import re
from collections import ChainMap

from handoff.core import ids, lifecycle, queries, schema
from handoff.core.model import CONVERSATION_KINDS, ENVELOPE_KINDS, MAX_TEXT, TERMINAL_STATES, format_ts, parse_ts
from handoff.errors import HandoffError

MAX_BODY_BYTES = 128 * 1024
KIND_ALIASES = {"request": ("say", "request"), "handoff": ("say", "handoff"), "question": ("say", "question"),
                "notice": ("say", "notice"), "summary": ("say", "summary")}


# -------------------------------------------------------------- sessions


def session_for(state: dict, ident: str | None, *, write: bool = True, own: dict | None = None) -> dict:
    """The session ``ident`` names (id or peer id).  ``own``: the sessions this clone opened (session id ->
    its open as written, ``local.own_sessions``); a write for one of them goes out as that peer even when
    another open of the same id sorts first in the log (the reducer gives the id to that one)."""
    if not ident:
        raise HandoffError("no_session", "no session given",
                           hint="pass --session ID or set HANDOFF_SESSION (create one with `handoff session new`)")
    if not ids.is_safe(ident):
        raise HandoffError("invalid_id", f"session {ident!r} is not a session or peer id",
                           hint="pass a session id (sess_...) or a peer id (agent.sess_...), e.g. from "
                                "`handoff session list`")
    s = queries.find_session(state, ident)
    mine = _own_session(own or {}, ident, s)
    if mine is not None:
        s = dict(queries.find_session(state, mine["session_id"]) or {}, **mine)
    if s is None:
        raise HandoffError("session_not_found", f"session {ident!r} not found",
                           hint="list sessions with `handoff session list`")
    if write and s["state"] == "closed":
        raise HandoffError("session_closed", f"session {s['session_id']} is closed",
                           hint="open a new one with `handoff session new`")
    return s


def _own_session(own: dict, ident: str, found: dict | None) -> dict | None:
    """This clone's own open of the session ``ident`` names, when the log gives that id to another open."""
    rec = own.get(found["session_id"] if found else ident) or next(
        (r for r in own.values() if r["peer_id"] == ident), None)
    if rec is None or (found is not None and found.get("open_event_id") == rec.get("open_event_id")):
        return None
    if found is not None and found["session_id"] != rec["session_id"]:
        return None  # ``ident`` named another session (by its peer id): not ours to override
    return {k: rec.get(k) for k in ("session_id", "peer_id", "agent", "name")}


def session_open(state: dict, *, agent: str, channels: list[str], name: str | None, session_id: str,
                 workspace: str | None) -> list[dict]:
    ids.check_id("agent", agent)
    for c in channels:
        ids.check_id("channel", c)
    if name is not None:
        ids.check_id("agent", name)
    ids.check_id("session", session_id)
    peer = f"{name or agent}.{session_id}"
    ids.check_id("peer", peer)
    body = {"agent": agent, "channels": sorted(set(channels)), "name": name, "workspace": workspace}
    existing = state["sessions"].get(session_id)
    if existing is not None:  # `--id` makes `session new` idempotent: same identity -> the original
        same = (existing["peer_id"], existing["agent"], existing["name"], sorted(existing["channels"])) == \
            (peer, agent, name, body["channels"])
        if same:
            opened = {"kind": "session-open", "id": existing["open_event_id"], "from": existing["peer_id"],
                      "session_id": session_id}
            return [{"_replay": opened}]
        raise HandoffError("id_conflict", f"session {session_id} already belongs to {existing['peer_id']} (agent "
                                          f"{existing['agent']!r}) with other channels or name: a session id is "
                                          "its first opener's",
                           hint="open your session with a new id (leave --id out), or repeat the original command "
                                "exactly to retry it")
    return [{"kind": "session-open", "from": peer, "session_id": session_id,
             "body": {k: v for k, v in body.items() if v is not None}}]


def session_close(state: dict, session: dict, given_id: str | None = None, *, by: dict | None = None,
                  admins: list[str] = ()) -> list[dict]:
    """Close ``session``, written by the session itself or by ``by`` (another session of the same agent,
    or of an ``identity.admins`` agent: the reducer ignores a close by anyone else)."""
    if session["state"] == "closed":  # closing twice changes nothing: the original close is returned
        return [{"_replay": {"kind": "session-close", "id": session.get("close_event_id"), "from": session["peer_id"],
                             "session_id": session["session_id"]}}]
    closer = by or session
    if closer["agent"] != session["agent"] and closer["agent"] not in admins:
        raise HandoffError("not_session_owner",
                           f"{closer['peer_id']} (agent {closer['agent']!r}) may not close session "
                           f"{session['session_id']} of agent {session['agent']!r}",
                           hint="only that agent's sessions, or an agent listed in identity.admins in "
                                ".handoffs/config.yaml, may close it")
    draft = {"kind": "session-close", "from": closer["peer_id"], "session_id": session["session_id"], "body": {}}
    apply_idempotency(draft, given_id)
    if draft.get("id"):
        draft["id"] = "evt_" + draft["id"][4:]
    return [draft]


# ------------------------------------------------------------------ input


def parse_body(raw: str | None, *, default: dict | None = None) -> dict:
    """``--body`` as JSON (or @file holding JSON); refuse anything that is not an object."""
    if raw is None:
        return dict(default or {})
    if len(raw.encode()) > MAX_BODY_BYTES:
        raise HandoffError("body_too_large", f"body is over {MAX_BODY_BYTES} bytes",
                           hint="put large content in a file in the repo and reference its path")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise HandoffError("invalid_body", f"body is nested deeper than {MAX_BODY_DEPTH} levels",
                           hint="flatten the JSON object") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise HandoffError("invalid_body", f"body is not valid JSON: {exc}",
                           hint="""pass a JSON object, e.g. --body '{"text":"hello"}', or --body @file.json""") from None
    if not isinstance(value, dict):
        raise HandoffError("invalid_body", f"body must be a JSON object, got {type(value).__name__}",
                           hint="""wrap it: --body '{"text": ...}'""")
    if _depth(value) > MAX_BODY_DEPTH:
        raise HandoffError("invalid_body", f"body is nested deeper than {MAX_BODY_DEPTH} levels",
                           hint="flatten the JSON object")
    return value


MAX_BODY_DEPTH = 24  # an event file allows 32 levels; the body sits a level or two down


def _depth(value, level: int = 1) -> int:
    if level > MAX_BODY_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level)
    return level


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed")


MAX_TIME_MS = schema.MAX_MS  # 9999-12-31T23:59:59.999Z: the last time an RFC 3339 string can hold
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, now_ms: int, what: str) -> str | None:
    """An RFC 3339 time, unix seconds, or a duration from now (``90s``, ``10m``, ``2h``, ``1d``), up to
    year 9999."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)\s*([smhdw])", value.strip())
    ms = now_ms + int(m[1]) * _UNIT_S[m[2]] * 1000 if m else parse_ts(value.strip())
    if ms is None:
        raise HandoffError("invalid_argument", f"{what} {value!r} is not a time",
                           hint="use 2026-05-02T21:00:00Z, unix seconds, or a duration like 30m or 2h")
    if not 0 <= ms <= MAX_TIME_MS:
        raise HandoffError("invalid_argument", f"{what} {value!r} is out of range: times go from 1970 to year 9999",
                           hint="use 2026-05-02T21:00:00Z, unix seconds, or a duration like 30m or 2h")
    return format_ts(ms)


def parse_duration(value: str) -> int:
    """A duration in milliseconds (seconds, or 90s, 10m, 2h, 1d), at most what fits before year 9999."""
    m = re.fullmatch(r"(\d+)\s*([smhd]?)", value.strip())
    if not m:
        raise HandoffError("invalid_argument", f"duration {value!r} is not understood",
                           hint="use a number of seconds or 90s, 10m, 2h, 1d")
    ms = int(m[1]) * _UNIT_S[m[2]] * 1000
    if ms > MAX_TIME_MS:
        raise HandoffError("invalid_argument", f"duration {value!r} is too long",
                           hint="use a number of seconds or 90s, 10m, 2h, 1d")
    return ms


def _ref(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,159}", value):
        raise HandoffError("invalid_id", f"{what} {value!r} is not a valid id",
                           hint="ids are letters, digits, '.', '_', ':' or '-' (no spaces, slashes or control characters)")
    return value


# ---------------------------------------------------------------- idempotency


def replay_or_none(state: dict, draft: dict, key: str | None, fields: tuple = ()) -> dict | None:
    """A retry with the same id/key returns the original; the same key with other content is refused.

    ``fields`` (default: every semantic field) are the ones compared."""
    if not key:
        return None
    msgs = state["messages"]
    for m in (msgs.with_key(key) if hasattr(msgs, "with_key") else msgs):
        mkey = (m.get("ext") or {}).get("idempotency_key")
        if m["id"] == key or (mkey == key and m["from"] == draft["from"]):
            if all(m.get(k) == draft.get(k) for k in (fields or _SEMANTIC)):
                return m
            raise HandoffError("id_conflict", f"{key!r} was already used for a different message ({m['id']})",
                               hint="use a new --id for new content; re-send identical content to retry")
    return None


def _prior(state: dict, key: str, sender: str) -> dict | None:
    for m in state["messages"]:
        if m["id"] == key or ((m.get("ext") or {}).get("idempotency_key") == key and m["from"] == sender):
            return m
    return None


_SEMANTIC = ("kind", "channel", "surface", "thread_id", "direct_id", "from", "to", "work_id", "reply_to", "trace_id",
             "causation_id", "body")


# A verb's addressing (to, reply_to, causation) is derived from the work's history, which moves on
# between an attempt and its retry; what the user asked for is the kind, the unit and the body.
_VERB_FIELDS = ("kind", "channel", "from", "work_id", "body")


def _same(existing: dict, draft: dict) -> bool:
    return all(existing.get(k) == draft.get(k) for k in _SEMANTIC)


def apply_idempotency(draft: dict, given_id: str | None) -> str | None:
    """``--id``: a full event id is used as the id; anything else is kept as an idempotency key."""
    if given_id is None:
        return None
    if re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", given_id):
        draft["id"] = given_id
    else:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", given_id):
            raise HandoffError("invalid_id", f"--id {given_id!r} is not a valid id or idempotency key",
                               hint="use letters, digits, '.', '_', ':' or '-'")
        draft["ext"] = dict(draft.get("ext") or {}, idempotency_key=given_id)
    return given_id


# ------------------------------------------------------------------- send


def send(state: dict, session: dict, *, workspace_id: str, now_ms: int, channel: str, kind: str,
         body: dict, surface: str | None = None, thread: str | None = None, direct: str | None = None,
         to: str | None = None, work: str | None = None, reply_to: str | None = None, trace_id: str | None = None,
         causation_id: str | None = None, expires_at: str | None = None, given_id: str | None = None,
         interaction_id: str | None = None, ext: dict | None = None, new_thread_hint: str | None = None,
         fresh: str | None = None) -> list[dict]:
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
        _ref(interaction_id, "interaction id")
        trace_id = trace_id or interaction_id
    if to is not None:
        if not (ids.is_valid("peer", to)):
            ids.check_id("peer", to)
    if work is not None:
        ids.check_id("work", work)
    for value, what in ((reply_to, "reply-to"), (trace_id, "trace id"), (causation_id, "causation id")):
        _ref(value, what)
    if isinstance(body.get("text"), str) and len(body["text"]) > MAX_TEXT:
        raise HandoffError("body_too_large", f"text is over {MAX_TEXT} characters", hint="shorten it")
    draft: dict = {"kind": kind, "channel": channel, "from": session["peer_id"], "session_id": session["session_id"],
                   "to": to, "work_id": work, "reply_to": reply_to, "trace_id": trace_id,
                   "causation_id": causation_id, "body": body, "ext": dict(ext) if ext else None,
                   "expires_at": parse_time(expires_at, now_ms, "--expires-at")}
    if draft["expires_at"] is not None and parse_ts(draft["expires_at"]) <= now_ms:
        raise HandoffError("expired", f"--expires-at {expires_at} is not in the future",
                           hint="receivers drop expired messages; give a later time or a duration like 30m")
    existing = state["work"].get(work) if work else None
    if given_id and thread is None and direct is None and surface != "direct":
        prior = _prior(state, given_id, session["peer_id"])
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
        draft["after"] = _parents(state, draft, existing)
    elif reply_to or causation_id:
        draft["after"] = _parents(state, draft, None)
    return [draft]


def _place(draft: dict, state: dict, session: dict, workspace_id: str, surface: str | None, thread: str | None,
           direct: str | None, existing: dict | None, interaction_id: str | None, hint: str | None,
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


def _counterparty(work: dict, peer: str) -> str:
    return work["target_peer_id"] if peer == work["opened_by_peer_id"] else work["opened_by_peer_id"]


def check_lifecycle(state: dict, draft: dict) -> None:
    """Refuse, before anything is written, what the reducer would flag."""
    work = state["work"].get(draft["work_id"])
    probe = dict(draft, id="msg_probe", ts="9999-12-31T23:59:59.999Z", hlc="9" * 16 + "-00000")
    agent_by_peer = {s["peer_id"]: s["agent"] for s in state["sessions"].values()}
    _, refusal = lifecycle.apply(work, probe, agent_by_peer.get,
                                 lambda to: (draft.get("body") or {}).get("target_kind") == "agent")
    if refusal is not None:
        code, message = refusal
        hints = {
            "work_closed": "terminal states are final; open a new work_id for follow-up work",
            "work_container_mismatch": "continue in the work's own container, or open a new work_id there",
            "not_target": "only the work's initiator and target may act on it",
            "work_not_found": "open the work first with a say or capability carrying --work and --to",
            "invalid_transition": "check the work's state with `handoff work status --work ID`",
            "already_responded": "the handoff was already answered",
        }
        if code == "work_not_found":
            raise HandoffError("work_not_found", message, hint=hints[code])
        raise HandoffError(code, message, hint=hints.get(code, ""))
    if work is None and draft["kind"] in ("say", "capability"):
        if _work_id_used(state, draft["work_id"]):
            raise HandoffError("work_exists", f"{draft['work_id']} is already used", hint="pick a new work id")


def _parents(state: dict, draft: dict, work: dict | None) -> list[str]:
    parents = set()
    if work is not None:
        applied = [h["message_id"] for h in work["history"] if not h["refused"]]
        if applied:
            parents.add(applied[-1])
    for key in ("reply_to", "causation_id"):
        if draft.get(key) and _has_message(state, draft[key]):
            parents.add(draft[key])
    return sorted(parents) or None


# The state may be the index's lazy view (index.State): its message list answers these from an index
# instead of a scan.  A plain list (reducer.reduce's output) is scanned.

def _has_message(state: dict, mid: str) -> bool:
    msgs = state["messages"]
    if hasattr(msgs, "has_id"):
        return msgs.has_id(mid)
    return any(m["id"] == mid for m in msgs)


def _work_id_used(state: dict, wid: str) -> bool:
    msgs = state["messages"]
    if hasattr(msgs, "uses_work"):
        return msgs.uses_work(wid)
    return any(m.get("work_id") == wid for m in msgs)


# ------------------------------------------------------------- work verbs


def find_work(state: dict, ident: str) -> dict:
    if not isinstance(ident, str) or not ids.is_safe(ident):
        raise HandoffError("invalid_id", f"{ident!r} is not a work or handoff id",
                           hint="list work with `handoff work list` or handoffs with `handoff list`")
    w = state["work"].get(ident)
    if w is None:
        units = state["work"]
        for cand in (units.by_opener(ident) if hasattr(units, "by_opener") else units.values()):
            if cand["opener_id"] == ident:
                return cand
        raise HandoffError("work_not_found", f"work or handoff {ident!r} not found",
                           hint="list work with `handoff work list` or handoffs with `handoff list`")
    return w


def _work_envelope(w: dict, session: dict, kind: str, body: dict, *, to: str | None = None,
                   reply_to: str | None = None) -> dict:
    peer = session["peer_id"]
    target = w["target_peer_id"]
    if w.get("target_agent") and target == w["target_agent"] and peer != w["opened_by_peer_id"] \
            and session["agent"] == w["target_agent"]:
        target = peer  # the first session of the addressed agent to answer becomes the target
    counterparty = target if peer == w["opened_by_peer_id"] else w["opened_by_peer_id"]
    return {"kind": kind, "channel": w["channel"], "surface": w["surface"], "thread_id": w.get("thread_id"),
            "direct_id": w.get("direct_id"), "from": peer, "session_id": session["session_id"],
            "to": to or counterparty, "work_id": w["work_id"], "trace_id": w.get("trace_id"),
            "reply_to": reply_to or w["opener_id"], "body": body}


def _finish(state: dict, drafts: list[dict], given_id: str | None) -> list[dict]:
    if given_id:
        # The first draft carries the id/key itself; later drafts of the same command (accept writes a
        # receipt and a trace) carry "<key>:2", ... so a retry finds and returns every one of them.
        replays = []
        for i, d in enumerate(drafts):
            key = apply_idempotency(d, given_id) if i == 0 else _sub_key(d, given_id, i + 1)
            replays.append(replay_or_none(state, d, key, _VERB_FIELDS))
        if all(r is not None for r in replays):
            return [{"_replay": r} for r in replays]
        if any(r is not None for r in replays):  # a crash between two files: write only the missing ones
            drafts = [d for d, r in zip(drafts, replays) if r is None]
    staged = state
    for d in drafts:
        check_lifecycle(staged, d)
        d["after"] = _parents(staged, d, staged["work"].get(d["work_id"]))
        if len(drafts) > 1:  # later drafts are checked against the state the earlier ones produce
            probe = dict(d, id="msg_probe", ts="9999-12-31T23:59:59.999Z", hlc="9" * 16 + "-00000")
            agent_by_peer = {s["peer_id"]: s["agent"] for s in state["sessions"].values()}
            new, _ = lifecycle.apply(staged["work"].get(d["work_id"]), probe, agent_by_peer.get)
            staged = dict(staged, work=ChainMap({d["work_id"]: new}, staged["work"]))
    return drafts


def accept(state: dict, session: dict, ident: str, *, message: str | None = None, given_id: str | None = None) -> list[dict]:
    w = find_work(state, ident)
    receipt = _work_envelope(w, session, "receipt", {"for_id": w["opener_id"], "status": "accepted"})
    trace = _work_envelope(w, session, "trace", {"state": "working", "message": message or "accepted"})
    return _finish(state, [receipt, trace], given_id)


def reject(state: dict, session: dict, ident: str, *, reason: str, code: str = "busy",
           given_id: str | None = None) -> list[dict]:
    w = find_work(state, ident)
    if not reason or not reason.strip():
        raise HandoffError("invalid_argument", "a rejection needs --reason", hint='e.g. --reason "busy with migrations"')
    if w["response"] is not None and not is_terminal(w) and session["peer_id"] == w["target_peer_id"]:
        # `reject` is the admission decision; once taken on, the work ends with `fail` or `cancel`
        raise HandoffError("already_responded", f"{w['work_id']} was already {w['response']}",
                           hint=f"end accepted work with `handoff fail {w['work_id']} -m REASON`")
    body = {"for_id": w["opener_id"], "status": "rejected", "reason_code": code, "detail": reason}
    return _finish(state, [_work_envelope(w, session, "receipt", body)], given_id)


def trace(state: dict, session: dict, ident: str, new_state: str, *, message: str | None = None,
          result: dict | None = None, checkpoint: dict | None = None, reason_code: str | None = None,
          given_id: str | None = None) -> list[dict]:
    w = find_work(state, ident)
    body = {"state": new_state, "message": message, "result": result, "checkpoint": checkpoint,
            "reason_code": reason_code}
    return _finish(state, [_work_envelope(w, session, "trace", {k: v for k, v in body.items() if v is not None})],
                   given_id)


def _sub_key(draft: dict, given_id: str, n: int) -> str:
    key = f"{given_id}:{n}"
    draft["ext"] = dict(draft.get("ext") or {}, idempotency_key=key)
    return key


def cancel(state: dict, session: dict, ident: str, *, message: str | None = None, given_id: str | None = None) -> list[dict]:
    w = find_work(state, ident)
    if session["peer_id"] == w["opened_by_peer_id"]:
        body = {"for_id": w["opener_id"], "status": "canceled"}
        if message:
            body["detail"] = message
        return _finish(state, [_work_envelope(w, session, "receipt", body)], given_id)
    return trace(state, session, ident, "canceled", message=message, given_id=given_id)


def reply(state: dict, session: dict, ident: str, *, text: str, given_id: str | None = None) -> list[dict]:
    w = find_work(state, ident)
    peer = session["peer_id"]
    last_other = None
    for h in w["history"]:
        if h["from"] != peer and not h["refused"]:
            last_other = h["message_id"]
    draft = _work_envelope(w, session, "say", {"text": text, "intent": "reply"}, reply_to=last_other)
    draft["causation_id"] = last_other
    return _finish(state, [draft], given_id)


def request(state: dict, session: dict, *, workspace_id: str, now_ms: int, to: str, channel: str, description: str,
            context: dict | None, work: str | None, deadline: str | None, thread: str | None,
            direct: bool, given_id: str | None, trace_id: str | None = None, fresh: str | None = None) -> list[dict]:
    """Hivemind's ``request``: a say that opens a work unit, carrying the context bundle.

    ``fresh`` (a new ULID from the shell) names the work unit when neither ``work`` nor ``given_id`` does."""
    ids.check_id("channel", channel)
    if not description or not description.strip():
        raise HandoffError("invalid_argument", "a handoff needs a description (-d TEXT)", hint='-d "what to do next"')
    ids.check_id("peer", to)
    is_peer = any(s["peer_id"] == to for s in state["sessions"].values()) or "." in to
    if to == session["peer_id"]:
        raise HandoffError("invalid_argument", "a handoff to yourself is not a handoff", hint="--to another agent or peer")
    if direct and not is_peer:
        raise HandoffError("invalid_surface", "a direct room needs a peer id, not an agent name",
                           hint="address a peer (agent.session) or drop --direct")
    if given_id and work is None:  # a retry must name the same work unit: derive it from the id
        m = re.fullmatch(r"msg_([0-9a-hjkmnp-tv-z]{26})", given_id)
        work = f"work_{m[1]}" if m else "work_" + re.sub(r"[^A-Za-z0-9_-]", "-", given_id)[:64]
    if work is None and fresh is None:
        raise ValueError("a new work unit needs a fresh ULID from the caller")
    work = work if work is not None else f"work_{fresh}"  # --work '' is refused, not replaced
    ids.check_id("work", work)
    body = {"text": description, "intent": "handoff", "context": context or {},
            "target_kind": "peer" if is_peer else "agent"}
    drafts = send(state, session, workspace_id=workspace_id, now_ms=now_ms, channel=channel, kind="say", body=body,
                  surface="direct" if direct else "thread", thread=thread, to=to, work=work,
                  given_id=given_id, trace_id=trace_id, new_thread_hint=work[5:], fresh=fresh)
    deadline_at = parse_time(deadline, now_ms, "--deadline")
    for d in drafts:
        if not d.get("_replay") and deadline_at:
            d["deadline_at"] = deadline_at
    return drafts


def is_terminal(w: dict) -> bool:
    return w["state"] in TERMINAL_STATES
