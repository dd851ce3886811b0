"""Registration point for command modules added by later work (kept import-cheap)."""
from . import insight  # noqa: F401  (metrics, log)
