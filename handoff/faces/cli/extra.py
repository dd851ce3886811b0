"""Registration point for command modules added by later work (kept import-cheap)."""
from . import (
    agents,  # noqa: F401
    approvals,  # noqa: F401  (approve, deny)
    compact,  # noqa: F401  (compact)
    demo,  # noqa: F401
    durable,  # noqa: F401  (watch, wait, claim, heartbeat, release, sweep)
    flush,  # noqa: F401  (flush: commit what batched writes left pending)
    insight,  # noqa: F401  (metrics, log)
    review,  # noqa: F401  verify, report, sync, hooks
)
