"""Registration point for command modules added by later work (kept import-cheap)."""
from . import durable  # noqa: F401  (watch, wait, claim, heartbeat, release, sweep)
