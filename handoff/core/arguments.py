"""What a write command's arguments mean: a JSON body, a time, a duration, a reference id.

Pure: "now" is passed in; every refusal is a ``HandoffError`` with the reason code the CLI prints.
"""
from __future__ import annotations

import json
import re

from handoff.core import schema
from handoff.core.model import format_ts, parse_ts
from handoff.errors import HandoffError

MAX_BODY_BYTES = 128 * 1024


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


def check_ref(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,159}", value):
        raise HandoffError("invalid_id", f"{what} {value!r} is not a valid id",
                           hint="ids are letters, digits, '.', '_', ':' or '-' (no spaces, slashes or control characters)")
    return value
