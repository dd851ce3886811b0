"""Registration point for command modules added by later work (kept import-cheap)."""
