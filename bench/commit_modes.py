#!/usr/bin/env python3
"""Commits per handoff and send latency, per commit mode (``commit: auto | batch | off``).

    python bench/commit_modes.py [--n 40] [--window 2s] [--process] [--json]

For each mode, in a fresh repository (``handoff init``, then the mode through ``HANDOFF_COMMIT``):

* **one full handoff between two agents** through the real CLI (``handoff.faces.cli.main``, in
  process): two ``session new``, ``request``, ``accept``, ``progress``, ``reply`` (the coordinator
  answers), ``complete``, two ``session close`` -- nine writes -- then the commits it added to the
  branch are counted.  ``batch`` ends with nothing (the background flusher commits: the bench polls
  until it has), ``batch+flush`` (background off) ends the sequence with ``handoff flush``, ``off``
  leaves the files to the agent's own commit (counted as 0 handoff commits);
* **send latency**: ``n`` ``handoff send`` commands one after another, each timed from the call to
  its return (p50, p90, max, in ms); ``--process`` runs each as its own ``python -m handoff send``
  (start-up included, as an agent calling the CLI pays it).  In ``batch`` mode a send that finds the window passed commits
  everything pending, so p90/max show those; the background flusher runs beside the sends, as it
  would for an agent.

The figures are printed as ratios against ``auto`` measured in the same run (absolute times depend on
the machine); the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handoff.faces.cli import main  # noqa: E402

MODES = ("auto", "batch", "batch+flush", "off")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def cli(repo: Path, *argv: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main([*argv, "--repo", str(repo), "-o", "json"])
    if rc != 0:
        raise SystemExit(f"handoff {' '.join(argv)} failed ({rc}): {out.getvalue()}")
    return json.loads(out.getvalue())


def new_repo(base: Path, name: str, mode: str, window: str) -> Path:
    repo = base / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "--allow-empty",
        "-m", "initial")
    cli(repo, "init", "--workspace", "bench")
    cfg = repo / ".handoffs" / "config.yaml"
    background = "false" if mode == "batch+flush" else "true"
    cfg.write_text(cfg.read_text() + f"batch:\n  window: '{window}'\n  background: {background}\n")
    git(repo, "commit", "-qam", "batch settings")
    return repo


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").strip())


def pending(repo: Path) -> int:
    d = Path(git(repo, "rev-parse", "--absolute-git-dir").strip()) / "handoff" / "pending"
    return len(os.listdir(d)) if d.is_dir() else 0


def settle(repo: Path, timeout: float = 120) -> None:
    """Wait for the background flusher: nothing pending and its guard file gone."""
    guard = Path(git(repo, "rev-parse", "--absolute-git-dir").strip()) / "handoff" / "flusher"
    deadline = time.monotonic() + timeout
    while pending(repo) or guard.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the flusher did not commit within {timeout}s")
        time.sleep(0.05)


def handoff_flow(repo: Path, mode: str) -> dict:
    before = commits(repo)
    t0 = time.perf_counter()
    c = cli(repo, "session", "new", "--agent", "coordinator", "--channel", "release")["session_id"]
    r = cli(repo, "session", "new", "--agent", "reviewer", "--channel", "release")["session_id"]
    work = cli(repo, "request", "--session", c, "--to", "reviewer", "--channel", "release",
               "-d", "Check the release docs")["handoff_id"]
    cli(repo, "accept", work, "--session", r, "-m", "on it")
    cli(repo, "progress", work, "--session", r, "-m", "README checked")
    cli(repo, "reply", work, "--session", c, "-m", "CHANGELOG too, please")
    cli(repo, "complete", work, "--session", r, "-m", "docs match the release")
    cli(repo, "session", "close", r, "--session", r)
    cli(repo, "session", "close", c, "--session", c)
    if mode == "batch+flush":
        cli(repo, "flush")
    elapsed = time.perf_counter() - t0
    if mode == "batch":
        settle(repo)
    return {"commits": commits(repo) - before, "writes": 9, "flow_ms": round(elapsed * 1000, 1),
            "uncommitted": int(cli(repo, "status")["uncommitted_events"])}


def send_latency(repo: Path, n: int, mode: str, process: bool = False) -> dict:
    s = cli(repo, "session", "new", "--agent", "sender", "--channel", "bench")["session_id"]
    before = commits(repo)
    times = []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for i in range(n):
        argv = ["send", "--session", s, "--channel", "bench", "--text", f"probe {i}"]
        t0 = time.perf_counter()
        if process:  # a real `handoff send` process: interpreter start-up included
            subprocess.run([sys.executable, "-m", "handoff", *argv, "--repo", str(repo), "-o", "json"], env=env,
                           check=True, capture_output=True)
        else:
            cli(repo, *argv)
        times.append((time.perf_counter() - t0) * 1000)
    if mode == "batch+flush":
        cli(repo, "flush")
    if mode == "batch":
        settle(repo)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * (n - 1))], 2),
            "max_ms": round(times[-1], 2), "sends": n, "send_commits": commits(repo) - before}


def run(n: int, window: str, process: bool = False) -> dict:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="handoff-commit-modes-") as tmp:
        for mode in MODES:
            os.environ["HANDOFF_COMMIT"] = mode.split("+")[0]
            repo = new_repo(Path(tmp), mode.replace("+", "_"), mode, window)
            results[mode] = {**handoff_flow(repo, mode), **send_latency(repo, n, mode, process)}
        os.environ.pop("HANDOFF_COMMIT", None)
    auto = results["auto"]
    for r in results.values():
        r["commits_vs_auto"] = round(r["commits"] / auto["commits"], 3) if auto["commits"] else None
        r["p50_vs_auto"] = round(r["p50_ms"] / auto["p50_ms"], 3)
    return {"n": n, "window": window, "process": process, "modes": results}


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="sends per mode for the latency figures")
    ap.add_argument("--window", default="2s", help="batch.window")
    ap.add_argument("--process", action="store_true", help="time each send as its own `python -m handoff` process")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args(argv)
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    data = run(args.n, args.window, args.process)
    if not args.json:
        how = "each its own process" if args.process else "in process"
        print(f"one handoff (9 writes) and {args.n} sends ({how}) per mode, batch.window {args.window}; "
              "ratios vs auto")
        print(f"{'mode':<12} {'commits/handoff':>15} {'vs auto':>8} {'send p50 ms':>12} {'vs auto':>8} "
              f"{'p90 ms':>8} {'max ms':>8} {'commits/sends':>14}")
        for mode, r in data["modes"].items():
            vs = "-" if r["commits_vs_auto"] is None else f"{r['commits_vs_auto']:.2f}"
            print(f"{mode:<12} {r['commits']:>15} {vs:>8} {r['p50_ms']:>12.1f} {r['p50_vs_auto']:>8.2f} "
                  f"{r['p90_ms']:>8.1f} {r['max_ms']:>8.1f} {r['send_commits']:>6}/{r['sends']:<7}")
    print(json.dumps(data, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
