"""handoff: git-backed handoffs between AI agents.

    from handoff import Handoff, HandoffError
    hf = Handoff(".")
    me = hf.session("sess_reviewer")
    print(me.brief())

Names are loaded on first use, so ``import handoff`` (and the CLI's start-up)
stays cheap.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Handoff", "HandoffError", "Session", "__version__"]
_WHERE = {"Handoff": "app.api", "Session": "app.api", "HandoffError": "errors"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'handoff' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
