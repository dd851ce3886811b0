"""``handoff demo``: an end-to-end handoff between two agents in a throwaway repository."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .apps import app
from .common import ENTRY, Cx, command


@command(app, "demo")
def demo(cx: Cx, directory: Annotated[Optional[str], typer.Option(
        "--dir", help="make the demo repository here and keep it (default: a temp dir, removed after)")] = None):
    """Watch two agents hand work over: every step is the real command, then its output.

    \b
    Examples:
      handoff demo
      handoff demo --dir /tmp/handoff-demo
      handoff demo -o json
    """
    from handoff.faces import demo as demo_mod

    def say(line: str) -> None:
        if not cx.machine:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    summary = demo_mod.run(directory, machine=cx.machine, say=say, main=ENTRY[0])
    if cx.machine:
        cx.emit(summary)
