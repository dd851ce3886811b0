"""Compaction's benchmark: ``python bench/compact.py --events 100000 --small 10000``.

Builds (or reuses, under bench/out/, as bench/run.py does) a large and a small repo with the tool's own
writer (bench/gen.py), then measures, for the large repo before and after ``handoff compact --before 30d``
and for the small one, each side interleaved with the other in the same run:

* the number of files under ``.handoffs/`` and the checkout's size (bytes and disk blocks);
* ``git status --porcelain`` (median of its runs);
* a cold ``handoff inbox`` (cache deleted) and a warm one (``-o json``), and a committing ``handoff send``;

and prints them with the ratios large/small (the goal: warm reads and send within 1.2x of the small repo,
the file count bounded by open work).  Every figure is the median of its runs; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    ENV,
    build_repo,
    drop_cache,
    handoff,
    log,
    measure_send,
    measure_warm,
    med,
    pick_session,
    populate,
    timed,
)


def tree_figures(repo: Path) -> dict:
    """Files and bytes under .handoffs/ (what a checkout holds) and the disk blocks they take."""
    files = size = blocks = 0
    for dp, _dn, fn in os.walk(repo / ".handoffs"):
        for f in fn:
            st = os.lstat(os.path.join(dp, f))
            files += 1
            size += st.st_size
            blocks += st.st_blocks * 512
    return {"files": files, "bytes": size, "disk_bytes": blocks}


def measure_status(repos: list[Path], runs: int) -> list[float]:
    times: list[list[float]] = [[] for _ in repos]
    for repo in repos:
        timed(["git", "status", "--porcelain"], repo)  # (refreshes the index's stat data once)
    for _ in range(runs):
        for k, repo in enumerate(repos):
            times[k].append(timed(["git", "status", "--porcelain"], repo)[0])
    return [med(t) for t in times]


def measure_cold(pairs: list[tuple[Path, str]], runs: int) -> list[float]:
    times: list[list[float]] = [[] for _ in pairs]
    for i in range(runs):
        order = list(enumerate(pairs)) if i % 2 == 0 else list(reversed(list(enumerate(pairs))))
        for k, (repo, sid) in order:
            drop_cache(repo)
            times[k].append(timed(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo)[0])
    return [med(t) for t in times]


def figures(big: tuple[Path, str, str], small: tuple[Path, str, str], runs: int, cold_runs: int) -> dict:
    (b, bsid, bch), (s, ssid, sch) = big, small
    out: dict = {"big": tree_figures(b), "small": tree_figures(s)}
    st_b, st_s = measure_status([b, s], runs)
    cold_b, cold_s = measure_cold([(b, bsid), (s, ssid)], cold_runs)
    (warm_b, warm_s), _floor = measure_warm([(b, bsid), (s, ssid)], runs)
    (send_b, send_s), _floor = measure_send([(b, bsid, bch), (s, ssid, sch)], max(3, runs // 2))
    out["big"].update(status_s=st_b, cold_s=cold_b, warm_s=warm_b, send_s=send_b)
    out["small"].update(status_s=st_s, cold_s=cold_s, warm_s=warm_s, send_s=send_s)
    out["ratio"] = {k: round(out["big"][k] / out["small"][k], 3) for k in
                    ("files", "bytes", "disk_bytes", "status_s", "cold_s", "warm_s", "send_s")}
    for side in ("big", "small"):
        out[side] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out[side].items()}
    return out


def git_size(repo: Path) -> dict:
    proc = subprocess.run(["git", "count-objects", "-v"], cwd=repo, env=ENV, capture_output=True, text=True)
    return dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--before", default="30d", help="handoff compact --before")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    repos = {}
    for n in (a.events, a.small):
        path = a.out / f"repo-{n}"
        info = build_repo(path, n)
        timed(handoff(path, "status", "-o", "json"), path)
        sid, peer, channel = pick_session(path)
        populate(path, sid, peer, channel)
        repos[n] = (path, sid, channel, info)
    big, small = repos[a.events][:3], repos[a.small][:3]
    cold_runs = 2 if a.events >= 50_000 else 3
    log("before compaction ...")
    before = figures(big, small, a.runs, cold_runs)
    log(f"  {json.dumps(before['ratio'])}")
    log(f"compacting the {a.events:,}-event repo ...")
    t = time.perf_counter()
    _wall, out = timed(handoff(big[0], "compact", "--before", a.before, "-o", "json"), big[0])
    compact_s = time.perf_counter() - t
    compacted = json.loads(out)
    log(f"  {compact_s:.1f}s: sealed {compacted['sealed']:,}, {len(compacted['segments'])} segments, "
        f"{compacted['remaining']:,} event files left")
    state = json.loads(timed(handoff(big[0], "status", "-o", "json"), big[0])[1])
    log("after compaction ...")
    after = figures(big, small, a.runs, cold_runs)
    log(f"  {json.dumps(after['ratio'])}")
    result = {
        "events": a.events, "small": a.small, "before": a.before,
        "compact_s": round(compact_s, 2),
        "compact": {k: compacted[k] for k in ("sealed", "removed", "remaining", "bytes")} | {
            "segments": len(compacted["segments"])},
        "open_work_after": state.get("open_work", state.get("work_open")),
        "before_compaction": before, "after_compaction": after,
        "git_objects_big": git_size(big[0]),
        "generate_s": {n: repos[n][3].get("total_seconds") for n in repos},
        "load_avg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
