"""Wall time and randomness for the shell (the core never reads them).

``HANDOFF_NOW`` (RFC 3339 or unix seconds) pins "now" for demos and tests of
deadlines; it never affects ordering correctness, only what time is written.
"""
from __future__ import annotations

import os
import time

from handoff.core import ids
from handoff.core.model import parse_ts

_last = [0, 0]  # last (ms, random) handed out by this process: ids stay monotonic within a process


def now_ms() -> int:
    pinned = os.environ.get("HANDOFF_NOW")
    if pinned:
        ms = parse_ts(pinned)
        if ms is not None:
            return ms
    return time.time_ns() // 1_000_000


def new_ulid(ms: int | None = None) -> str:
    ms = now_ms() if ms is None else ms
    # Monotonic within a process, but only across small steps back: a pinned HANDOFF_NOW in the
    # future must not drag every later id of a long-lived process (tests, the MCP server) with it.
    if _last[0] - 10_000 < ms <= _last[0]:
        ms, rand = _last[0], _last[1] + 1
    else:
        import secrets  # (only writers need it: kept off the read commands' start-up)
        rand = secrets.randbits(80)
    _last[0], _last[1] = ms, rand
    return ids.new_ulid(ms, rand & ((1 << 80) - 1))
