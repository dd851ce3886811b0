"""The benchmark of SPEC section 4: ``python bench/run.py --events N --json``.

Builds (or reuses, under bench/out/) a realistic repo of N events with the
tool's own writer (bench/gen.py), then measures each figure against its
floor in the same run, alternating the two sides so load on the machine
hits both alike, and prints one JSON object as its last line.

Every figure is the median of its runs.  What is measured:

* cold: ``handoff inbox`` with the cache deleted (a full parse and reduce)
  vs a bare loop reading and parsing the same files with PyYAML's C loader,
  each a whole process; one untimed read of every file comes first, and the
  floor goes first every other run (this machine's kernel drops idle files
  from its page cache, and the side that reads them back paid for both).
* warm: ``handoff inbox -o json`` with a warm cache vs
  ``python -c "import typer, yaml"``.
* incremental: the first ``handoff inbox`` after ``git pull`` brings 1,000
  new events (written in a clone by the same writer, after the last local
  event) vs warm_s + the time a bare loop takes to parse those 1,000 files.
* send: ``handoff send`` (committing) vs ``python -c "import typer, yaml"``
  plus git's plumbing for one commit: hash-object -w, read-tree,
  update-index --add, write-tree, commit-tree, update-ref.
* growth: the same inbox / send in this repo divided by a repo of 1,000.
* watch: file published -> line printed by a running ``handoff watch``.
* peak RSS: the largest of any handoff process run here (the cold build).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import gen  # noqa: E402

PY = sys.executable
GEN_VERSION = "3"  # bump when gen.py changes what it writes: cached repos are rebuilt

FLOOR_COLD = r"""
import os, sys, time, yaml
root = sys.argv[1]
for dp, dn, fn in os.walk(os.path.join(root, ".handoffs", "events")):
    for f in fn:
        if f.endswith(".yaml"):
            with open(os.path.join(dp, f), "rb") as fh:
                yaml.load(fh.read(), Loader=yaml.CSafeLoader)
"""
FLOOR_FILES = r"""
import sys, time, yaml
paths = sys.stdin.read().split("\n")
t = time.perf_counter()
for p in paths:
    if p:
        with open(p, "rb") as fh:
            yaml.load(fh.read(), Loader=yaml.CSafeLoader)
print(time.perf_counter() - t)
"""


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


def env() -> dict:
    e = gen.git_env()
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("HANDOFF_NOW", None)
    e.pop("HANDOFF_SESSION", None)
    return e


ENV = env()
PEAK_KB = [0]


def timed(cmd: list[str], cwd: Path | None = None, *, stdin: bytes | None = None, handoff: bool = False,
          check: bool = True) -> tuple[float, bytes]:
    """Wall time of one process (and, for ours, its peak RSS including its workers)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(stdin)
    wall = time.perf_counter() - t
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.decode()[-800:]}")
    return wall, out


def handoff(repo: Path, *args: str) -> list[str]:
    return [PY, "-m", "handoff", *args]


class RSS:
    """Peak RSS of our processes: a child's ru_maxrss covers the workers it waited for."""

    @staticmethod
    def run(cmd: list[str], cwd: Path) -> float:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        err = proc.stderr.read() if proc.stderr else b""
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed: {err.decode()[-800:]}")
        PEAK_KB[0] = max(PEAK_KB[0], usage.ru_maxrss)
        return wall


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- repos


def build_repo(path: Path, n: int) -> dict:
    """The repo of ``n`` generated events, reused from an earlier run (reset to its generated commit)."""
    marker = path / ".git" / "bench-repo.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("version") == GEN_VERSION and info.get("events") == n:
            subprocess.run(["git", "reset", "-q", "--hard", info["commit"]], cwd=path, env=ENV, check=True)
            subprocess.run(["git", "clean", "-qfd", "--", ".handoffs", "bench-floor"], cwd=path, env=ENV, check=True)
            return info
    if path.exists():
        shutil.rmtree(path)
    log(f"generating {n:,} events in {path} ...")
    t = time.monotonic()
    last = [t]

    def progress(done, total):
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            log(f"  {done:,}/{total:,} events ({time.monotonic() - t:.0f}s)")

    info = gen.generate(path, n, progress=progress)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, env=ENV, capture_output=True, check=True,
                            text=True).stdout.strip()
    info.update(version=GEN_VERSION, events=n, total_seconds=round(time.monotonic() - t, 1), commit=commit)
    marker.write_text(json.dumps(info))
    log(f"  done: {info['seconds']}s writing, {info.get('commit_seconds')}s committing")
    return info


def pick_session(repo: Path) -> tuple[str, str, str]:
    """An active session (the one whose inbox is closest to 20 entries): (id, peer id, channel).

    ``populate`` then gives it the same 20 waiting entries in every repo, so the inbox figures compare
    history sizes, not inbox sizes."""
    _, out = timed(handoff(repo, "session", "list", "-o", "json"), repo)
    sessions = [s for s in json.loads(out)["sessions"] if s["state"] == "active"]
    best = None
    for s in sessions:
        _, out = timed(handoff(repo, "inbox", "--session", s["session_id"], "-o", "json"), repo)
        count = json.loads(out)["count"]
        key = (count == 0, abs(count - 20), s["session_id"])
        if best is None or key < best[0]:
            best = (key, s)
    s = best[1]
    return s["session_id"], s["peer_id"], s["channels"][0]


def populate(repo: Path, sid: str, peer: str, channel: str, n: int = 20) -> None:
    """The same inbox in every repo: what waits is acknowledged, then ``n`` new messages arrive for it."""
    from handoff.app.workspace import Workspace
    from handoff.core import message_ops, session_ops
    timed(handoff(repo, "inbox", "--session", sid, "--ack", "all", "-o", "json"), repo)
    sender = "sess_benchsender"
    from handoff.core import model
    env = dict(ENV, HANDOFF_NOW=model.format_ts(model.parse_ts(_last_ts(repo)) + 30_000))
    subprocess.run(handoff(repo, "session", "new", "--agent", "bench-sender", "--channel", channel, "--id", sender,
                           "-o", "json"), cwd=repo, env=env, capture_output=True)
    ws = Workspace(repo)
    start = model.parse_ts(_last_ts(repo)) + 60_000  # right after the history, long before "now": the later
    try:                                             # pulls and sends still sort after everything
        for i in range(n):
            os.environ["HANDOFF_NOW"] = model.format_ts(start + 1000 * i)
            ws.write(lambda st, i=i: message_ops.send(st, session_ops.session_for(st, sender), workspace_id=ws.workspace_id,
                                         now_ms=0, channel=channel, kind="say", body={"text": f"please look at item {i}"},
                                         surface="thread", thread="thread_bench-inbox", to=peer), commit=True)
    finally:
        os.environ.pop("HANDOFF_NOW", None)


def drop_cache(repo: Path) -> None:
    shutil.rmtree(repo / ".git" / "handoff" / "cache", ignore_errors=True)


# --------------------------------------------------------------------------- measurements


def measure_cold(repo: Path, sid: str, runs: int) -> tuple[float, float]:
    """Each run times both sides, the floor first every other run; one untimed read of every file comes
    first, so neither side pays alone for files the kernel has dropped from its page cache."""
    ours, floor = [], []
    floor_script = [PY, "-c", FLOOR_COLD, str(repo)]
    timed(floor_script)

    def run_ours():
        drop_cache(repo)
        ours.append(RSS.run(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo))

    def run_floor():
        floor.append(timed(floor_script)[0])

    for i in range(runs):
        for side in ((run_ours, run_floor) if i % 2 == 0 else (run_floor, run_ours)):
            side()
        log(f"  cold run {i + 1}/{runs}: ours {ours[-1]:.2f}s, floor {floor[-1]:.2f}s")
    return med(ours), med(floor)


def measure_warm(repos: list[tuple[Path, str]], runs: int) -> tuple[list[float], float]:
    """Median warm inbox per repo, and the import floor, all interleaved."""
    floor_cmd = [PY, "-c", "import typer, yaml"]
    for repo, sid in repos:
        timed(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo)  # warm up
    ours = [[] for _ in repos]
    floor = []
    for _ in range(runs):
        for k, (repo, sid) in enumerate(repos):
            ours[k].append(timed(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo)[0])
            floor.append(timed(floor_cmd)[0])
    return [med(x) for x in ours], med(floor)


def floor_commit(repo: Path, i: int) -> float:
    """``import typer, yaml`` plus git's plumbing for one commit (what any committing command must do)."""
    f = repo / "bench-floor" / f"{os.getpid()}-{i}.txt"
    f.parent.mkdir(exist_ok=True)
    f.write_text(f"floor {i} {time.time()}\n")
    rel = str(f.relative_to(repo))
    tmp_index = repo / ".git" / "bench-floor.index"
    e = dict(ENV, GIT_INDEX_FILE=str(tmp_index))
    t = time.perf_counter()
    subprocess.run([PY, "-c", "import typer, yaml"], env=ENV, check=True)
    blob = subprocess.run(["git", "hash-object", "-w", rel], cwd=repo, env=ENV, capture_output=True,
                          check=True).stdout.decode().strip()
    subprocess.run(["git", "read-tree", "HEAD"], cwd=repo, env=e, check=True)
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}"], cwd=repo, env=e,
                   check=True)
    tree = subprocess.run(["git", "write-tree"], cwd=repo, env=e, capture_output=True,
                          check=True).stdout.decode().strip()
    commit = subprocess.run(["git", "commit-tree", tree, "-p", "HEAD", "-m", "floor"], cwd=repo, env=ENV,
                            capture_output=True, check=True).stdout.decode().strip()
    subprocess.run(["git", "update-ref", "HEAD", commit], cwd=repo, env=ENV, check=True)
    wall = time.perf_counter() - t
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}"], cwd=repo, env=ENV)
    return wall


def measure_send(repos: list[tuple[Path, str, str]], runs: int) -> tuple[list[float], float]:
    ours = [[] for _ in repos]
    floor = []
    for i in range(runs):
        for k, (repo, sid, channel) in enumerate(repos):
            cmd = handoff(repo, "send", "--session", sid, "--channel", channel, "--thread", "thread_bench-sends",
                          "-m", f"bench send {i}", "-o", "json")
            wall, out = timed(cmd, repo)
            assert json.loads(out)["committed"] is True, out
            ours[k].append(wall)
            floor.append(floor_commit(repo, i))
    return [med(x) for x in ours], med(floor)


def measure_incremental(repo: Path, sid: str, warm_s: float, rounds: int, batch: int) -> tuple[float, float, dict]:
    """``git pull`` brings ``batch`` new events; time the first command after it."""
    peer = repo.parent / f"{repo.name}-peer"
    if peer.exists():
        shutil.rmtree(peer)
    subprocess.run(["git", "clone", "-q", str(repo), str(peer)], env=ENV, check=True)
    state = json.loads(timed(handoff(repo, "status", "-o", "json"), repo)[1])
    del state
    last_ts = _last_ts(repo)
    ours, floors = [], []
    from handoff.core import model
    for r in range(rounds):
        start = model.format_ts(model.parse_ts(last_ts) + 60_000 + r * 86_400_000)
        gen.generate(peer, batch, seed=100 + r, start=start, days=1, commit=False, tag=f"p{r}")
        gen.commit_all(peer, f"peer batch {r}")
        new_files = subprocess.run(["git", "diff", "--name-only", "HEAD~1", "HEAD", "--", ".handoffs/events"],
                                   cwd=peer, env=ENV, capture_output=True, check=True).stdout.decode().split()
        subprocess.run(["git", "pull", "-q", "--ff-only", str(peer), "HEAD"], cwd=repo, env=ENV, check=True)
        ours.append(RSS.run(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo))
        paths = "\n".join(str(repo / p) for p in new_files).encode()
        _, out = timed([PY, "-c", FLOOR_FILES], stdin=paths)
        floors.append(warm_s + float(out.decode().strip()))
        log(f"  incremental round {r + 1}/{rounds}: {len(new_files)} new files, ours {ours[-1]:.3f}s, "
            f"floor {floors[-1]:.3f}s")
    shutil.rmtree(peer, ignore_errors=True)
    return med(ours), med(floors), {"new_files": len(new_files)}


def _last_ts(repo: Path) -> str:
    code = ("import sys; from handoff.app.workspace import Workspace; s = Workspace(sys.argv[1]).state(); "
            "print(max(m['ts'] for m in s['messages'][-50:]))")
    return subprocess.run([PY, "-c", code, str(repo)], env=ENV, capture_output=True, check=True,
                          text=True).stdout.strip()


def measure_refold(repo: Path, sid: str) -> float:
    """A full fold from the parse cache (what a branch switch or an out-of-order pull costs): no parsing."""
    code = ("import sys, time; from handoff.app.workspace import Workspace; from handoff.index import refresh; "
            "ws = Workspace(sys.argv[1]); ws.state(); idx = refresh.open_index(ws); db = idx.connect(); "
            "db.execute('COMMIT') if db.in_transaction else None; db.execute(\"DELETE FROM main.meta WHERE k IN ('acc', 'gen')\"); "
            "t = time.perf_counter(); Workspace(sys.argv[1]).state(); print(time.perf_counter() - t)")
    return float(subprocess.run([PY, "-c", code, str(repo)], env=ENV, capture_output=True, check=True,
                                text=True).stdout.strip())


def measure_watch(repo: Path, sid: str, peer: str, channel: str, count: int) -> tuple[float | None, float | None, str]:
    """Publish events addressed to the session; time until a running watcher prints each one."""
    ok = subprocess.run(handoff(repo, "watch", "--help"), cwd=repo, env=ENV, capture_output=True).returncode == 0
    if ok:
        cmd, how = handoff(repo, "watch", "--session", sid, "-o", "jsonl"), "`handoff watch` process"
    else:
        cmd, how = [PY, str(HERE / "watcher.py"), str(repo), sid], "FileWatcher engine + inbox reconcile (bench/watcher.py)"
    sender = "sess_benchsender"  # (opened by populate)
    proc = subprocess.Popen(cmd, cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            bufsize=1)
    seen: dict[str, float] = {}
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            ready.set()
            try:
                item = json.loads(line)
            except ValueError:
                continue
            for key in ("id", "message_id"):
                if isinstance(item, dict) and item.get(key):
                    seen.setdefault(item[key], time.perf_counter())
            entry = item.get("entry") if isinstance(item, dict) else None
            if isinstance(entry, dict) and entry.get("id"):
                seen.setdefault(entry["id"], time.perf_counter())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    from handoff.app.workspace import Workspace
    from handoff.core import message_ops, session_ops
    time.sleep(2.0)  # let the watcher start and print what is already waiting
    ws = Workspace(repo)
    sent: dict[str, float] = {}
    for i in range(count):
        res = ws.write(lambda st, i=i: message_ops.send(st, session_ops.session_for(st, sender), workspace_id=ws.workspace_id,
                                           now_ms=0, channel=channel, kind="say", body={"text": f"watch {i}"},
                                           surface="thread", thread="thread_bench-watch", to=peer), commit=False)
        sent[res.events[0]["id"]] = time.perf_counter()
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(k in seen for k in sent):
        time.sleep(0.05)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    lat = sorted((seen[k] - v) * 1000 for k, v in sent.items() if k in seen)
    if not lat:
        return None, None, "the watcher printed none of the published events"
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    note = f"{how}: {len(lat)}/{len(sent)} events seen"
    return round(med(lat), 1), round(p99, 1), note


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where the repos are built and kept")
    ap.add_argument("--runs", type=int, default=0, help="runs per figure (default: by size)")
    ap.add_argument("--watch-events", type=int, default=200)
    a = ap.parse_args()
    n = a.events
    a.out.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "handoff")], env=ENV, check=False)  # as installed

    repo = a.out / f"repo-{n}"
    info = build_repo(repo, n)
    small = a.out / "repo-1000"
    if n != 1000:
        build_repo(small, 1000)
    drop_cache(repo)
    timed(handoff(repo, "status", "-o", "json"), repo)  # build the index once to pick the session
    sid, peer, channel = pick_session(repo)
    populate(repo, sid, peer, channel)
    if n != 1000:
        timed(handoff(small, "status", "-o", "json"), small)
        small_sid, small_peer, small_channel = pick_session(small)
        populate(small, small_sid, small_peer, small_channel)
    else:
        small_sid, small_channel = sid, channel

    big = n >= 50_000
    runs_cold = a.runs or (2 if big else 3)
    runs_warm = a.runs or 15
    runs_send = a.runs or 8
    log(f"cold ({runs_cold} runs) ...")
    cold_s, cold_floor_s = measure_cold(repo, sid, runs_cold)
    log("warm ...")
    warm_pairs = [(repo, sid)] + ([(small, small_sid)] if n != 1000 else [])
    warm_list, warm_floor_s = measure_warm(warm_pairs, runs_warm)
    warm_s = warm_list[0]
    small_warm_s = warm_list[1] if n != 1000 else warm_s
    log("refold from the parse cache ...")
    refold_s = measure_refold(repo, sid)
    timed(handoff(repo, "inbox", "--session", sid, "-o", "json"), repo)
    log("incremental (git pull of 1,000 events) ...")
    inc_s, inc_floor_s, inc_info = measure_incremental(repo, sid, warm_s, rounds=a.runs or (2 if big else 3),
                                                      batch=1000)
    log("send ...")
    send_pairs = [(repo, sid, channel)] + ([(small, small_sid, small_channel)] if n != 1000 else [])
    send_list, send_floor_s = measure_send(send_pairs, runs_send)
    send_s = send_list[0]
    small_send_s = send_list[1] if n != 1000 else send_s
    log("watch ...")
    watch_p50, watch_p99, watch_note = measure_watch(repo, sid, peer, channel, a.watch_events)

    result = {
        "events": n,
        "repo": str(repo),
        "session": sid,
        "cold_s": round(cold_s, 3), "cold_floor_s": round(cold_floor_s, 3), "cold_ratio": round(cold_s / cold_floor_s, 3),
        "warm_s": round(warm_s, 4), "warm_floor_s": round(warm_floor_s, 4),
        "warm_ratio": round(warm_s / warm_floor_s, 3),
        "incremental_s": round(inc_s, 3), "incremental_floor_s": round(inc_floor_s, 3),
        "incremental_ratio": round(inc_s / inc_floor_s, 3),
        "send_s": round(send_s, 4), "send_floor_s": round(send_floor_s, 4), "send_ratio": round(send_s / send_floor_s, 3),
        "send_growth": round(send_s / small_send_s, 3),
        "inbox_growth": round(warm_s / small_warm_s, 3),
        "watch_p50_ms": watch_p50, "watch_p99_ms": watch_p99,
        "peak_rss_mb": round(PEAK_KB[0] / 1024, 1),
        "refold_s": round(refold_s, 3),
        "runs": {"cold": runs_cold, "warm": runs_warm, "send": runs_send},
        "generate_s": info.get("total_seconds"),
        "notes": {"watch": watch_note, "incremental": inc_info, "cpus": os.cpu_count(),
                  "load_avg": [round(x, 2) for x in os.getloadavg()]},
    }
    if not a.json:
        for k, v in result.items():
            sys.stdout.write(f"{k:22s} {v}\n")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
