"""Registration point for command modules added by later work (kept import-cheap)."""
from . import demo  # noqa: F401
from . import agents  # noqa: F401
from . import durable  # noqa: F401  (watch, wait, claim, heartbeat, release, sweep)
from . import insight  # noqa: F401  (metrics, log)
from . import review  # noqa: E402,F401  verify, report, sync, hooks
