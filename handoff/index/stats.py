"""What this process's refreshes did (tests and the bench read it), and where they spent their time."""
from __future__ import annotations

import os
import sys
import time

# What this process's refreshes did: folds extended, folds redone, files parsed.
STATS = {"extend": 0, "refold": 0, "parsed": 0}

_TRACE = os.environ.get("HANDOFF_INDEX_TRACE")
_trace_last = [time.perf_counter(), time.process_time()]


def trace(what: str) -> None:
    """HANDOFF_INDEX_TRACE=1: where a refresh spends its time (wall, and this process's CPU), on stderr.

    (Called as ``stats.trace``: a test replaces it to stop a build at a given step.)
    """
    if _TRACE:
        now = (time.perf_counter(), time.process_time())
        sys.stderr.write(f"index: {what:24s} {1000 * (now[0] - _trace_last[0]):8.1f} ms wall "
                         f"{1000 * (now[1] - _trace_last[1]):8.1f} ms cpu\n")
        _trace_last[:] = now
