#!/usr/bin/env python3
"""Watcher latency: an event file published by one process -> the real ``handoff watch -o jsonl``
process prints it.

    python bench/watch_latency.py [--repo PATH] [--n 100] [--events N] [--poll] [--json]

Three real processes: this one (reads the watcher's stdout, stamps each line on arrival), the
watcher, and a publisher that sends ``n`` directed messages one after another through the real
writer (``Workspace.write``, with its default commit).  The publisher records the moment each
file becomes visible (right after ``store.publish`` returns, i.e. after the atomic link), so the
figure is file-visible -> line printed by the watcher, including debounce, the rescan and the
commit that follows each publish.  Both timestamps come from the same machine clock.

Prints one JSON object as the last line: watch_p50_ms, watch_p99_ms, watch_mean_ms,
watch_max_ms, watch_samples, watch_mode, events_in_repo.  ``measure(repo_path, n)`` is the same
thing for ``bench/run.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PUBLISHER = r"""
import json, random, sys, time
from handoff.store import clock
from handoff.core import message_ops, session_ops
from handoff.store import files as store
from handoff.app.workspace import Workspace

repo, sender, to, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
stamps = {}
_publish = store.publish
def publish(root, rel, data, tmp):
    out = _publish(root, rel, data, tmp)
    stamps[rel.rsplit("/", 1)[-1].split(".", 1)[0]] = time.time()
    return out
store.publish = publish
ws = Workspace(repo)
random.seed(7)
for i in range(n):
    def build(state):
        s = session_ops.session_for(state, sender)
        return message_ops.send(state, s, workspace_id=ws.workspace_id, now_ms=clock.now_ms(), channel="bench",
                        kind="say", body={"text": f"latency probe {i}"}, surface="thread",
                        thread="thread_latency", to=to)
    ws.write(build)
    time.sleep(random.uniform(0.02, 0.08))  # spaced out: each probe is measured on its own
print(json.dumps(stamps))
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("HANDOFF_NOW", None)
    return env


def _cli(repo: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "handoff", *args, "-o", "json"], cwd=repo, env=_env(),
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _percentile(values: list[float], p: float) -> float:
    vals = sorted(values)
    k = (len(vals) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def measure(repo_path: str | os.PathLike, n: int = 100, poll: bool = False) -> dict:
    """Open two fresh sessions in ``repo_path`` (an initialised handoff repo), run the watcher and the
    publisher as separate processes, and return the latency figures (milliseconds)."""
    repo = Path(repo_path)
    tag = f"{os.getpid()}{int(time.time()) % 100000}"
    sender = _cli(repo, "session", "new", "--agent", "bench-pub", "--channel", "bench", "--id", f"sess_bp{tag}")
    target = _cli(repo, "session", "new", "--agent", "bench-sub", "--channel", "bench", "--id", f"sess_bs{tag}")
    events_in_repo = _cli(repo, "status")["events"]
    args = [sys.executable, "-m", "handoff", "watch", "--session", target["session_id"], "-o", "jsonl",
            "--consumer", f"bench{tag}", "--remind-every", "0"]
    if poll:
        args.append("--poll")
    watcher = subprocess.Popen(args, cwd=repo, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    arrivals: dict[str, float] = {}
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in watcher.stdout:
            t = time.time()
            try:
                note = json.loads(line)
            except ValueError:
                continue
            arrivals[note["id"]] = t
            lines.put(note["id"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # the watcher is ready once it has delivered a first probe sent before the measured run
        _cli(repo, "send", "--session", sender["session_id"], "--channel", "bench", "--to", target["peer_id"],
             "-m", "warm-up")
        lines.get(timeout=120)
        pub = subprocess.run([sys.executable, "-c", PUBLISHER, str(repo), sender["session_id"], target["peer_id"],
                              str(n)], cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
        if pub.returncode != 0:
            raise RuntimeError(f"publisher failed: {pub.stderr}")
        stamps = json.loads(pub.stdout.strip().splitlines()[-1])
        end = time.monotonic() + 60
        while any(mid not in arrivals for mid in stamps) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        watcher.terminate()
        try:
            watcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
    lat = [(arrivals[mid] - t) * 1000 for mid, t in stamps.items() if mid in arrivals]
    missing = len(stamps) - len(lat)
    if not lat:
        raise RuntimeError("no probe was reported by the watcher")
    return {
        "watch_p50_ms": round(statistics.median(lat), 1),
        "watch_p99_ms": round(_percentile(lat, 0.99), 1),
        "watch_mean_ms": round(statistics.fmean(lat), 1),
        "watch_max_ms": round(max(lat), 1),
        "watch_samples": len(lat),
        "watch_missing": missing,
        "watch_mode": "polling" if poll else "inotify",
        "events_in_repo": events_in_repo,
    }


def _fresh_repo() -> Path:
    path = Path(tempfile.mkdtemp(prefix="handoff-watch-bench-"))
    env = _env()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=bench", "-c", "user.email=b@example.com",
                                                "commit", "-q", "--allow-empty", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    subprocess.run(["git", "config", "user.name", "bench"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.email", "bench@example.com"], cwd=path, check=True)
    _cli(path, "init", "--workspace", "bench")
    return path


def seed_events(repo: Path, n: int) -> None:
    """Fill the repo with ``n`` events (built and stamped by the real writer code, one commit)."""
    if n <= 0:
        return
    code = r"""
import sys
from handoff.store import clock
from handoff.core.yaml import codec
from handoff.core import model
from handoff.core import message_ops, session_ops
from handoff.app.workspace import Workspace
ws = Workspace(sys.argv[1]); n = int(sys.argv[2])
ws.write(lambda st: session_ops.session_open(st, agent="filler", channels=["bench"], name=None,
                                      session_id="sess_filler01", workspace=None))
state = ws.state(refresh=True)
s = session_ops.session_for(state, "sess_filler01")
drafts = [message_ops.send(state, s, workspace_id=ws.workspace_id, now_ms=clock.now_ms(), channel="bench", kind="say",
                   body={"text": f"history {i}"}, surface="thread", thread=f"thread_hist{i % 50}")[0]
          for i in range(n)]
for ev in ws._stamp(state, drafts):
    p = ws.root / model.event_path(ev)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(codec.dump(ev))
"""
    subprocess.run([sys.executable, "-c", code, str(repo), str(n)], cwd=repo, env=_env(), check=True)
    subprocess.run(["git", "add", ".handoffs"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", f"{n} events of history"], cwd=repo, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", help="an initialised handoff repo (default: a fresh temporary one)")
    ap.add_argument("--n", type=int, default=100, help="probes to publish")
    ap.add_argument("--poll", action="store_true", help="measure the polling fallback instead of inotify")
    ap.add_argument("--events", type=int, default=0, help="first add this many events of history to the repo")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()
    repo = Path(args.repo) if args.repo else _fresh_repo()
    try:
        seed_events(repo, args.events)
        result = measure(repo, args.n, poll=args.poll)
    finally:
        if not args.repo:
            import shutil
            shutil.rmtree(repo, ignore_errors=True)
    if not args.json:
        print(f"watcher latency over {result['watch_samples']} probes ({result['watch_mode']}, "
              f"{result['events_in_repo']} events in repo): p50 {result['watch_p50_ms']} ms, "
              f"p99 {result['watch_p99_ms']} ms, max {result['watch_max_ms']} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
