"""The event schema: what a valid event file holds, and where it lives.

Pure.  Every event is a plain dict (what YAML gives back).  ``check_event``
applies the per-kind rules of AGH Network's current envelope at write time
and at read time alike; ``event_path`` is the single place that decides a
file name.

Layout: ``events/<YYYY-MM>/<DD>/<id>.<kind>.<sender>.yaml`` where the date
comes from the time inside the id (a ULID), never from the writer's choice.
"""
from __future__ import annotations

import datetime as _dt
import re
import time as _time
from typing import Any

from handoff.core import ids, schema
from handoff.errors import HandoffError

PROTOCOL = "handoff/v1"
ACCEPTED_PROTOCOLS = {PROTOCOL, "agh-network/v0"}

ENVELOPE_KINDS = ("say", "capability", "receipt", "trace", "greet", "whois")
CONVERSATION_KINDS = ("say", "capability", "receipt", "trace")
SESSION_KINDS = ("session-open", "session-close")
LEASE_KINDS = ("claim", "heartbeat", "release")
PERSON_KINDS = ("approval",)  # a person's decision on a gate (core/approvals.py): no session
ALL_KINDS = ENVELOPE_KINDS + SESSION_KINDS + LEASE_KINDS + PERSON_KINDS

TERMINAL_STATES = ("completed", "failed", "canceled")
RECEIPT_STATUSES = ("accepted", "rejected", "duplicate", "expired", "unsupported", "canceled")
TRACE_STATES = ("working", "needs_input", "completed", "failed", "canceled")

ENVELOPE_FIELDS = ("id", "kind", "channel", "surface", "thread_id", "direct_id", "from", "to", "work_id",
                   "reply_to", "trace_id", "causation_id", "ts", "expires_at", "body", "ext")
META_FIELDS = ("protocol", "workspace_id", "hlc", "after", "session_id", "proof", "sig", "deadline_at")
ALLOWED_FIELDS = frozenset(ENVELOPE_FIELDS + META_FIELDS)

ID_PREFIX = {"session-open": "evt", "session-close": "evt", "claim": "evt", "heartbeat": "evt",
             "release": "evt", "approval": "evt"}

_ID = schema.EVENT_ID_RE.pattern.removesuffix(r"\Z")
FILENAME_RE = re.compile(rf"(?P<id>{_ID})\.(?P<kind>[a-z0-9-]{{1,32}})\.(?P<sender>[a-z0-9][a-z0-9._-]{{0,127}})\.yaml\Z")
HLC_RE = schema.HLC_RE
MAX_TEXT = schema.MAX_TEXT


class EventError(HandoffError):
    """An event that breaks a schema rule."""


def bad(reason: str, message: str, hint: str = "") -> EventError:
    return EventError(reason, message, hint)


# ----------------------------------------------------------------------- time


def format_ts(ms: int) -> str:
    dt = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ts(value: object) -> int | None:
    """Milliseconds since the epoch from an RFC 3339 UTC string or integer unix seconds (1970..9999, else None)."""
    return schema.time_ms(value)


def format_hlc(wall_ms: int, counter: int) -> str:
    return f"{wall_ms:016d}-{counter:05d}"


def parse_hlc(value: object) -> tuple[int, int] | None:
    m = HLC_RE.fullmatch(value) if isinstance(value, str) else None
    return (int(m["wall"]), int(m["counter"])) if m else None


def next_hlc(seen: tuple[int, int] | None, now_ms: int) -> tuple[int, int]:
    """Hybrid logical clock tick: close to wall time, always above anything seen."""
    if seen is None or now_ms > seen[0]:
        return (now_ms, 0)
    return (seen[0], seen[1] + 1)


# ---------------------------------------------------------------------- paths


def event_path(event: dict[str, Any]) -> str:
    """Path of an event relative to ``.handoffs/``."""
    eid = event["id"]
    ms = ids.ulid_ms(eid.split("_", 1)[1])
    day = _time.gmtime(ms // 1000)  # (gmtime: ~20x cheaper than datetime + strftime, read on every file)
    return f"events/{day.tm_year:04d}-{day.tm_mon:02d}/{day.tm_mday:02d}/{eid}.{event['kind']}.{event['from']}.yaml"


def parse_filename(name: str) -> dict[str, Any] | None:
    m = FILENAME_RE.fullmatch(name)
    return m.groupdict() if m else None


def new_event_id(kind: str, ulid: str) -> str:
    return f"{ID_PREFIX.get(kind, 'msg')}_{ulid}"


# --------------------------------------------------------------- validation


def check_event(ev: dict[str, Any]) -> None:
    """Raise EventError if ``ev`` breaks a schema or per-kind rule.

    The shape of every field (type, grammar, bounds) is ``schema``'s; what follows is what each kind
    needs and what its fields mean together.
    """
    if not isinstance(ev, dict):
        raise bad("malformed", "an event must be a mapping")
    if "interaction_id" in ev:
        raise bad("legacy_field_rejected", "interaction_id is the legacy AGH field",
                  "use trace_id (the CLI maps --interaction-id to it)")
    extra = [k for k in ev if k not in ALLOWED_FIELDS]
    if extra:
        raise bad("malformed", f"unknown top-level field(s): {', '.join(sorted(map(str, extra)))[:200]}")
    kind = ev.get("kind")
    try:
        schema.check_shape(ev, kind in ENVELOPE_KINDS)
    except schema.ShapeError as exc:
        raise bad(exc.reason, exc.message, "correct that value and try again (docs/DESIGN.md, 'Event shape', "
                                           "lists the type and bounds of every field)") from None
    if ev.get("protocol") not in ACCEPTED_PROTOCOLS:
        raise bad("unsupported_profile", f"protocol {ev.get('protocol')!r} is not supported",
                  f"expected {PROTOCOL!r}; upgrade handoff if this file was written by a newer version")
    if kind not in ALL_KINDS:
        raise bad("unsupported_kind", f"kind {kind!r} is not known",
                  f"use one of: {', '.join(ENVELOPE_KINDS)}")
    for key in ("id", "workspace_id", "from", "hlc", "ts"):
        if ev.get(key) is None:
            raise bad("malformed", f"field {key!r} is missing")
    body = ev.get("body")
    if not isinstance(body, dict):
        raise bad("invalid_body", "body must be a mapping")
    if kind in ENVELOPE_KINDS:
        _check_envelope(ev, kind, body)
    elif kind in SESSION_KINDS:
        _check_session(ev, kind, body)
    elif kind in PERSON_KINDS:
        _check_approval(ev, body)
    else:
        _check_lease(ev, body)


def _check_envelope(ev: dict[str, Any], kind: str, body: dict[str, Any]) -> None:
    if ev.get("channel") is None:
        raise bad("invalid_id", "an envelope needs a channel", ids.GRAMMARS["channel"][1])
    surface = ev.get("surface")
    if kind in ("greet", "whois"):
        for key in ("surface", "thread_id", "direct_id", "work_id"):
            if ev.get(key) is not None:
                raise bad("invalid_surface", f"{kind} must not carry {key}")
        return
    if surface == "thread":
        if not ev.get("thread_id") or ev.get("direct_id") is not None:
            raise bad("invalid_surface", "surface 'thread' needs thread_id and no direct_id")
    elif surface == "direct":
        if not ev.get("direct_id") or ev.get("thread_id") is not None:
            raise bad("invalid_surface", "surface 'direct' needs direct_id and no thread_id")
        if not ev.get("to"):
            raise bad("invalid_surface", "a direct-room message needs `to` (the other peer)")
    else:
        raise bad("invalid_surface", f"{kind} needs surface 'thread' or 'direct', got {surface!r}")
    if kind == "say":
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad("invalid_body", "a say body needs non-empty 'text'")
        if len(text) > MAX_TEXT:
            raise bad("body_too_large", f"text is over {MAX_TEXT} characters")
    elif kind == "capability":
        cap = body.get("capability")
        if not isinstance(cap, dict) or not all(cap.get(k)
                                                 for k in ("id", "summary", "outcome")):
            raise bad("invalid_body", "a capability body needs capability.id, .summary and .outcome")
    elif kind == "receipt":
        if not ev.get("work_id"):
            raise bad("invalid_surface", "a receipt needs work_id")
        status = body.get("status")
        if status not in RECEIPT_STATUSES:
            raise bad("invalid_body", f"receipt status must be one of {', '.join(RECEIPT_STATUSES)}")
        if body.get("for_id") is None:
            raise bad("invalid_body", "a receipt needs for_id (the envelope it answers)")
        code = body.get("reason_code")
        if status == "accepted" and code is not None:
            raise bad("invalid_body", "an accepted receipt carries no reason_code")
        if status in ("rejected", "duplicate", "expired", "unsupported") and not code:
            raise bad("invalid_body", f"a {status} receipt needs reason_code")
    elif kind == "trace":
        if not ev.get("work_id"):
            raise bad("invalid_surface", "a trace needs work_id")
        if body.get("state") not in TRACE_STATES:
            raise bad("invalid_body", f"trace state must be one of {', '.join(TRACE_STATES)}")
        if body.get("gate") is not None and body["state"] != "working":
            raise bad("invalid_body", "a gate (body.gate) opens on a trace working only")


def _check_session(ev: dict[str, Any], kind: str, body: dict[str, Any]) -> None:
    if ev.get("session_id") is None:
        raise bad("malformed", "a session event needs session_id")
    if kind == "session-open":
        if not ids.is_valid("agent", body.get("agent")):
            raise bad("invalid_id", f"agent {body.get('agent')!r} is invalid", ids.GRAMMARS["agent"][1])
        if body.get("channels") is None:
            raise bad("invalid_id", "channels must be a list of channel ids")


def _check_approval(ev: dict[str, Any], body: dict[str, Any]) -> None:
    if ev.get("work_id") is None or ev.get("session_id") is not None:
        raise bad("malformed", "an approval needs a work_id and no session_id (a person writes it)")
    if body.get("decision") not in ("approved", "denied") or not body.get("for_id") or not body.get("by"):
        raise bad("invalid_body", "an approval needs body.decision (approved|denied), body.for_id and body.by")


def _check_lease(ev: dict[str, Any], body: dict[str, Any]) -> None:
    if ev.get("work_id") is None:
        raise bad("malformed", "a lease event needs a valid work_id")
    if ev["kind"] != "release" and body.get("lease_until") is None:
        raise bad("invalid_body", "claim and heartbeat need body.lease_until")


def check_name(rel_path: str, ev: dict[str, Any]) -> None:
    """The file name and directory must agree with the content (``ev`` has passed ``check_event``)."""
    if event_path(ev) == rel_path:
        return  # (the usual case; the checks below only find the right words for a mismatch)
    name = rel_path.rsplit("/", 1)[-1]
    parts = parse_filename(name)
    if parts is None:
        raise bad("malformed", f"file name {name!r} does not follow <id>.<kind>.<sender>.yaml")
    if (parts["id"], parts["kind"], parts["sender"]) != (ev.get("id"), ev.get("kind"), ev.get("from")):
        raise bad("malformed", "file name disagrees with the content (id, kind or sender)")
    if event_path(ev) != rel_path:
        raise bad("malformed", f"file belongs at {event_path(ev)!r}, not {rel_path!r}")
