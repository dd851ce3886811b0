"""Registration point for command modules added by later work (kept import-cheap)."""
from . import demo  # noqa: F401
from . import agents  # noqa: F401
