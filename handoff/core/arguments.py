"""What a write command's arguments mean: a JSON body, a time, a duration, a reference id.

Pure: "now" is passed in; every refusal is a ``HandoffError`` with the reason code the CLI prints.
"""
from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from handoff.core import schema
from handoff.core.model import format_ts, parse_ts
from handoff.errors import HandoffError

MAX_BODY_BYTES = 128 * 1024


def parse_body(raw: str | None, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
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


def _depth(value: object, level: int = 1) -> int:
    if level > MAX_BODY_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level)
    return level


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


MAX_TIME_MS = schema.MAX_MS  # 9999-12-31T23:59:59.999Z: the last time an RFC 3339 string can hold
UNIT_MS = {"": 1000, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}  # "": seconds


def duration_ms(text: str, units: str = "smhd", *, bare: bool = True, fractions: bool = False) -> float | None:
    """The one duration grammar, in milliseconds: a number and one of ``units`` (``bare``: or no unit, for
    seconds); ``fractions`` allows ``0.5s``.  ``None`` when ``text`` is not one (each caller words its refusal).
    A whole number gives an ``int``."""
    number = r"(\d+(?:\.\d*)?|\.\d+)" if fractions else r"(\d+)"
    m = re.fullmatch(rf"{number}\s*([{units}]{'?' if bare else ''})", text.strip())
    if not m:
        return None
    return (float(m[1]) if "." in m[1] else int(m[1])) * UNIT_MS[m[2]]


def parse_time(value: str | None, now_ms: int, what: str) -> str | None:
    """An RFC 3339 time, unix seconds, or a duration from now (``90s``, ``10m``, ``2h``, ``1d``), up to
    year 9999."""
    if value is None:
        return None
    span = duration_ms(value, "smhdw", bare=False)
    ms = now_ms + int(span) if span is not None else parse_ts(value.strip())
    if ms is None:
        raise HandoffError("invalid_argument", f"{what} {value!r} is not a time",
                           hint="use 2026-05-02T21:00:00Z, unix seconds, or a duration like 30m or 2h")
    if not 0 <= ms <= MAX_TIME_MS:
        raise HandoffError("invalid_argument", f"{what} {value!r} is out of range: times go from 1970 to year 9999",
                           hint="use 2026-05-02T21:00:00Z, unix seconds, or a duration like 30m or 2h")
    return format_ts(ms)


def parse_duration(value: str) -> int:
    """A duration in milliseconds (seconds, or 90s, 10m, 2h, 1d), at most what fits before year 9999."""
    ms = duration_ms(value)
    if ms is None:
        raise HandoffError("invalid_argument", f"duration {value!r} is not understood",
                           hint="use a number of seconds or 90s, 10m, 2h, 1d")
    if ms > MAX_TIME_MS:
        raise HandoffError("invalid_argument", f"duration {value!r} is too long",
                           hint="use a number of seconds or 90s, 10m, 2h, 1d")
    return int(ms)


def parse_every(value: str) -> float:
    """``sync --every`` (30s, 5m, 1h or seconds, fractions allowed) in milliseconds, more than zero."""
    v = value.strip().lower()
    sign = v[:1] if v[:1] in "+-" else ""
    ms = duration_ms(v[len(sign):], "smh", fractions=True)
    if ms is None:
        raise HandoffError("invalid_argument", f"--every {value!r} is not a duration",
                           hint="use seconds or a unit: 30s, 5m, 1h")
    if sign == "-" or ms <= 0:
        raise HandoffError("invalid_argument", "--every must be positive", hint="e.g. --every 30s")
    return ms


def check_ref(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,159}", value):
        raise HandoffError("invalid_id", f"{what} {value!r} is not a valid id",
                           hint="ids are letters, digits, '.', '_', ':' or '-' (no spaces, slashes or control characters)")
    return value
