"""Review and exchange: ``verify`` (with its verdict), ``report`` and ``sync`` (once, or in rounds).

These work on a repository path, not an open workspace: ``verify`` and ``sync`` also run where
``.handoffs/`` does not exist yet.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from handoff.core.arguments import parse_every
from handoff.errors import HandoffError

VERIFY_FAILED_HINT = ("committed handoff events are append-only: restore edited or deleted files "
                      "and write new events instead")


def verify(repo: str | None, *, base: str | None = None, against: str | None = None, rev: str | None = None,
           staged: bool = False, everything: bool = False, use_remotes: bool = True) -> dict:
    """``handoff verify``: the report, with an ``error`` (reason ``verification_failed``) when not ``ok``."""
    from handoff.app.verify import verify as run_verify
    r = run_verify(repo, base=base, against=against, rev=rev, staged=staged, everything=everything,
                   use_remotes=use_remotes)
    if not staged and rev is None:
        _note_pending(repo, r)
    if not r["ok"]:
        r["error"] = {"reason_code": "verification_failed",
                      "message": f"{r['errors']} problem(s) in .handoffs/ on this range", "hint": VERIFY_FAILED_HINT}
    return r


def report(repo: str | None, *, base: str | None = None, rev: str | None = None,
           html: str | os.PathLike | None = None,
           markdown: bool = False) -> dict:
    """``handoff report``: this branch's activity; ``html`` also writes a page there, ``markdown`` adds the text."""
    from handoff.app.activity import branch_activity
    data = branch_activity(repo, base=base, rev=rev)
    if rev is None:
        _note_pending(repo, data)
    if html is not None:
        from handoff.store.files import atomic_write_local
        from handoff.views.html import page
        atomic_write_local(Path(html).resolve(), page(data).encode("utf-8"))
        data["html"] = str(Path(html).resolve())
    if markdown:
        from handoff.views import report as rep_mod
        data["markdown"] = rep_mod.markdown(data)
    return data


def _note_pending(repo: str | None, out: dict) -> None:
    """``commit_pending``: event files published but not committed yet (``commit: batch``), so not in a
    range of commits; only when there are some (``handoff flush`` commits them)."""
    from handoff.app.batching import marker_times
    from handoff.git import cmd as gitcmd
    n = len(marker_times(gitcmd.discover(repo)))
    if n:
        out["commit_pending"] = n


def sync(repo: str | None, *, remote: str = "origin", push: bool = True, integrate: str | None = None,
         progress=None) -> dict:
    """``handoff sync``: push this branch's events, fetch everyone's; what is now visible here
    (``progress``: called with each of git's transfer progress reports, see ``app.sync.sync``)."""
    from handoff.app.sync import sync as run_sync
    from handoff.app.workspace import Workspace
    ws = Workspace(repo, require_init=False)
    flushed = None
    if ws.root.joinpath("config.yaml").exists():  # first commit what batched writes left pending: push it all
        from handoff.app.batching import flush_if_pending
        flushed = flush_if_pending(ws)
    r = run_sync(repo, remote=remote, push=push, integrate=integrate, config=ws.config, progress=progress)
    r["flushed"] = flushed
    if ws.root.joinpath("config.yaml").exists():
        records = ws.records()
        others = {r["event"]["id"] for r in records if "ref" in r and "event" in r}
        r["events_visible"] = ws.state(refresh=True)["event_count"]
        r["events_from_other_branches"] = len(others)
    return r


def sync_rounds(repo: str | None, every: str, count: int | None = None, *, remote: str = "origin",
                push: bool = True, integrate: str | None = None,
                progress=None) -> Iterator[tuple[int, dict | HandoffError]]:
    """``handoff sync --every``: (round number, its result with ``round`` set, or its refusal) per round;
    a failed round does not stop the next one."""
    interval = parse_every(every) / 1000  # (seconds)
    rounds = 0
    while count is None or rounds < count:
        if rounds:
            time.sleep(interval)
        rounds += 1
        try:
            r = sync(repo, remote=remote, push=push, integrate=integrate, progress=progress)
        except HandoffError as err:  # keep going: the next round may succeed (network back, work committed)
            yield rounds, err
            continue
        r["round"] = rounds
        yield rounds, r
