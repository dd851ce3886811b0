"""The shape of an event: the type and bounds of every field a file may hold.

Pure.  ``check_shape`` runs before any per-kind rule (``model.check_event``),
on every path that reads an event (work tree, revisions, remote refs, the
index's workers) and on every write, so nothing past it ever meets a list
where it expects a string, a time past year 9999 or a number SQLite cannot
store.  A file that breaks it becomes one ``malformed`` (or ``invalid_id``,
``invalid_body``) diagnostic naming the file; the rest of the state reads.

What is checked:

* every top-level field has one type (strings, lists of ids, mappings) and,
  where it is an id, its grammar; a field that does not belong to the kind
  (``channel`` on a lease, ``to`` on a session event) must be absent or null;
* times (``ts``, ``expires_at``, ``deadline_at``, ``body.deadline``,
  ``body.lease_until``) parse and fall between 1970 and 9999; ``hlc`` walls
  too; whole seconds and counters fit 64 bits;
* every body key the tool reads has its type (text is text, ``channels`` a
  list of channel ids, ``capability`` and ``context`` mappings whose known
  keys are typed too) and a size cap.  Keys the tool never reads are opaque
  values: the strict loader has already bounded their size and depth.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

from handoff.core import ids

MAX_TEXT = 64 * 1024  # a message's text, a description, a question
MAX_SHORT = 256  # names, states, reason codes
MAX_REF = 160  # ids of other events (reply_to, trace_id, after ...)
MAX_LIST = 256  # channels of a session, files of a handoff's context
MAX_AFTER = 64
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant an RFC 3339 time can name
MAX_SECONDS = 10 * 365 * 86400  # a lease of at most ten years

_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
HLC_RE = re.compile(r"(?P<wall>[0-9]{16})-(?P<counter>[0-9]{5})\Z")
EVENT_ID_RE = re.compile(r"[a-z][a-z0-9]{0,7}_[0-9a-hjkmnp-tv-z]{26}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_REF = re.compile(r"[/\\\x00-\x1f\x7f\s]")


class ShapeError(ValueError):
    """A field of the wrong type or out of bounds: ``reason`` is the diagnostic's reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


Rule = Callable[[str, object], None]  # (field name, value) -> None, or raise a refusal

def _fail(key: str, want: str, value: object, reason: str = "malformed") -> ShapeError:
    shown = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ShapeError(reason, f"field {key!r} must be {want}, got {shown}")


# ------------------------------------------------------------------- times


def time_ms(value: object) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 UTC string or whole unix seconds, within 1970..9999."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        ms = value * 1000
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        ms = int(value) * 1000
    elif isinstance(value, str) and len(value) <= 40:
        try:
            dt = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=_dt.UTC)
        try:
            ms = int(dt.timestamp() * 1000)
        except (OverflowError, OSError, ValueError):
            return None
    else:
        return None
    return ms if 0 <= ms <= MAX_MS else None


def _ts(key: str, value: object) -> None:
    if not (isinstance(value, str) and _TS.fullmatch(value) and time_ms(value) is not None):
        raise _fail(key, "an RFC 3339 UTC time like 2026-11-22T00:48:31.123Z", value)


def _time(key: str, value: object) -> None:
    if time_ms(value) is None:
        raise _fail(key, "an RFC 3339 UTC time or whole unix seconds, between 1970 and 9999", value)


def _hlc(key: str, value: object) -> None:
    m = HLC_RE.match(value) if isinstance(value, str) else None
    if m is None or int(m["wall"]) > MAX_MS:
        raise _fail(key, "a hybrid clock like '0001763772511123-00000'", value)


# --------------------------------------------------------- strings and ids


def _short(key: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_SHORT or _CONTROL.search(value):
        raise _fail(key, f"a non-empty string of at most {MAX_SHORT} characters without control characters", value)


def _text(key: str, value: object) -> None:
    if not isinstance(value, str):
        raise _fail(key, "a string", value, "invalid_body")
    if len(value) > MAX_TEXT:
        raise ShapeError("body_too_large", f"{key} is {len(value)} characters, over the {MAX_TEXT} cap")


def _ref(key: str, value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REF or _BAD_REF.search(value):
        raise _fail(key, "an id without spaces, slashes or control characters", value, "invalid_id")


def _grammar(kind: str) -> Rule:
    good: set[str] = set()  # ids repeat from file to file (senders, channels, threads): each is checked once

    def check(key: str, value: object) -> None:
        if type(value) is str and value in good:
            return
        if not ids.is_valid(kind, value):
            raise _fail(key, f"a {kind} id ({ids.GRAMMARS[kind][1]})", value, "invalid_id")
        if len(good) > 50_000:
            good.clear()
        good.add(value)  # type: ignore[arg-type]  # (is_valid holds only for a str)
    return check


def _event_id(key: str, value: object) -> None:
    if not (isinstance(value, str) and EVENT_ID_RE.match(value)):
        raise _fail(key, "a prefix, '_' and a lowercase ULID", value)


def _choice(*allowed: str) -> Rule:
    def check(key: str, value: object) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise _fail(key, f"one of {', '.join(allowed)}", value)
    return check


def _mapping(key: str, value: object) -> None:
    if not isinstance(value, dict):
        raise _fail(key, "a mapping", value, "invalid_body" if key.startswith("body") else "malformed")


def _after(key: str, value: object) -> None:
    if not isinstance(value, list) or len(value) > MAX_AFTER:
        raise _fail(key, f"a list of at most {MAX_AFTER} event ids", value)
    for item in value:
        _ref(key, item)


def _proof(key: str, value: object) -> None:
    if not isinstance(value, (str, dict)) or (isinstance(value, str) and len(value) > MAX_TEXT):
        raise _fail(key, "a string or a mapping", value)


def _sig(key: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > 16 * 1024:
        raise _fail(key, "a signature string", value)


def _seconds(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECONDS:
        raise _fail(key, f"whole seconds between 0 and {MAX_SECONDS}", value, "invalid_body")


def _str_list(check: Rule) -> Rule:
    def each(key: str, value: object) -> None:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise _fail(key, f"a list of at most {MAX_LIST} items", value, "invalid_body")
        for item in value:
            check(key, item)
    return each


def _nested(spec: dict[str, Rule]) -> Rule:
    """A mapping whose known keys are typed (unknown keys stay opaque)."""
    def check(key: str, value: object) -> None:
        _mapping(key, value)
        assert isinstance(value, dict)  # (what _mapping checked)
        for sub, rule in spec.items():
            if sub in value and value[sub] is not None:
                rule(f"{key}.{sub}", value[sub])
    return check


# ------------------------------------------------------------------ fields

# fields every kind may carry, and those only envelopes may carry (elsewhere: absent or null)
COMMON = {
    "protocol": _short, "workspace_id": _grammar("workspace"), "id": _event_id, "kind": _short,
    "from": _grammar("peer"), "hlc": _hlc, "ts": _ts, "after": _after, "session_id": _grammar("session"),
    "body": _mapping, "ext": _mapping, "proof": _proof, "sig": _sig, "expires_at": _time, "deadline_at": _time,
    "work_id": _grammar("work"),
}
ENVELOPE_ONLY = {
    "channel": _grammar("channel"), "surface": _choice("thread", "direct"), "thread_id": _grammar("thread"),
    "direct_id": _grammar("direct"), "to": _grammar("peer"), "reply_to": _ref, "trace_id": _ref,
    "causation_id": _ref,
}
ENVELOPE = {**COMMON, **ENVELOPE_ONLY}
OTHER = dict(COMMON, **{k: None for k in ENVELOPE_ONLY})  # None: not for this kind

_LIST_ITEM = _text
BODY = {
    "text": _text, "message": _text, "detail": _text, "description": _text, "task": _text, "question": _text,
    "title": _text, "status": _short, "state": _short, "reason_code": _short, "intent": _short,
    "target_kind": _short, "name": _short, "workspace": _short, "agent": _short, "for_id": _ref, "reopens": _ref,
    "deadline": _time, "lease_until": _time, "lease_seconds": _seconds,
    "gate": _short, "approval_by": _short, "decision": _short, "by": _short, "reason": _text,
    "channels": _str_list(_grammar("channel")),
    "capability": _nested({"id": _short, "summary": _text, "outcome": _text}),
    "context": _nested({"files_changed": _str_list(_LIST_ITEM), "decisions": _str_list(_LIST_ITEM),
                        "next_steps": _str_list(_LIST_ITEM)}),
}


def check_shape(ev: object, envelope: bool) -> None:
    """Raise ShapeError unless every field of ``ev`` has its type and bounds (``envelope``: the kind is one
    of the envelope kinds, so channel, surface, to ... may be set)."""
    if not isinstance(ev, dict):
        raise ShapeError("malformed", "an event must be a mapping")
    fields = ENVELOPE if envelope else OTHER
    for key, value in ev.items():
        if value is None or key not in fields:
            continue  # (unknown names are model.check_event's to refuse, with its own words)
        rule = fields[key]
        if rule is None:
            raise ShapeError("malformed", f"field {key!r} does not belong on a {ev.get('kind')} event")
        rule(key, value)
    body = ev.get("body")
    if isinstance(body, dict):
        for key, value in body.items():
            if not isinstance(key, str):
                raise ShapeError("invalid_body", "body keys must be strings")
            rule = BODY.get(key)
            if rule is not None and value is not None:
                rule(f"body.{key}", value)
