"""Commands for agent harnesses: ``brief``, ``doctor`` and ``mcp``."""
from __future__ import annotations

from typing import Annotated

import typer

from .apps import app
from .common import Cx, SessionOpt, command


@command(app, "brief")
def brief(cx: Cx, session: SessionOpt = None,
          limit: Annotated[int, typer.Option("--limit", help="at most N items per section")] = 8):
    """What a fresh agent session needs first: inbox, handoffs, open work with checkpoints, leases, overdue.

    \b
    Examples:
      handoff brief --session "$HANDOFF_SESSION"
      handoff brief -s sess_reviewer -o json
    """
    from handoff.views import brief as brief_mod
    cx.emit(cx.me(session).brief(limit=limit), brief_mod.human)


@command(app, "doctor")
def doctor(cx: Cx, session: SessionOpt = None):
    """Check the set-up and say how to fix each problem (exit 1 if something is broken).

    \b
    Example:
      handoff doctor --session "$HANDOFF_SESSION"
    """
    from handoff.app.doctor import human
    data = cx.hf.doctor(session)
    cx.emit(data, human)
    if not data["ok"]:
        raise typer.Exit(1)


@command(app, "mcp")
def mcp(cx: Cx, schema: Annotated[bool, typer.Option("--schema", help="print the tool list and its size, "
                                                                     "then exit")] = False):
    """Serve the handoff operations as MCP tools over stdio (needs the extra: pip install 'git-handoff[mcp]').

    \b
    Example (Claude Code):
      claude mcp add handoff -e HANDOFF_SESSION=sess_1 -- handoff mcp --repo /path/to/repo
    """
    from handoff.faces import mcp as mcp_server
    try:
        import mcp.server.mcpserver  # noqa: F401  (2.x; only this command loads the SDK)
    except ImportError:
        raise mcp_server.missing_sdk_error() from None
    if schema:
        import anyio
        tools = anyio.run(mcp_server.list_tools_json, cx.repo)
        data = {"tools": tools, "count": len(tools), "chars": len(mcp_server._dump(tools))}
        return cx.emit(data, lambda d: "\n".join([f"{t['name']}: {t.get('description', '')}" for t in d["tools"]]
                                                 + [f"{d['count']} tools, {d['chars']} characters of schema"]))
    mcp_server.serve(cx.repo)
