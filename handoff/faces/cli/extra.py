"""Registration point for command modules added by later work (kept import-cheap)."""
from . import (
    agents,  # noqa: F401
    approvals,  # noqa: F401  (approve, deny)
    demo,  # noqa: F401
    durable,  # noqa: F401  (watch, wait, claim, heartbeat, release, sweep)
    insight,  # noqa: F401  (metrics, log)
    review,  # noqa: F401  verify, report, sync, hooks
)
