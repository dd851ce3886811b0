"""Stores shaped as agents fill them through the API, for ``bench/run.py --shapes``.

* ``one_thread``: two sessions talk in ONE thread of one channel, every message dated today (so all
  files land in one day folder and inside the index's "may be future" window), each side's received
  messages acknowledged (``.git/handoff/acks/<session>.txt``, as ``Session.ack`` writes them).
* ``many_threads``: the same two sessions, one day folder, but each thread holds four messages.

Written like ``bench/gen.py`` (the same ``GenWorkspace``: every event goes through ``Workspace.write``
with the ``*_ops`` the API calls, the state folded in memory, fsync off, one commit at the end), so the
files are byte for byte what the API writes; ``check_against_api`` compares a small store with one the
API fills.  ``measure`` (run in its own process) times the warm API inbox and the API send.

    python bench/shapes.py one_thread 3200 /tmp/shape-3200      # build one
    python bench/shapes.py --check                             # shapes vs the API, small
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import gen  # noqa: E402

from handoff.core import message_ops, model, session_ops  # noqa: E402
from handoff.store import clock, local  # noqa: E402

SHAPES = ("one_thread", "many_threads")
CHANNEL = "chat"
SESSIONS = (("alice", "sess_shape_alice"), ("bob", "sess_shape_bob"))
PER_THREAD = {"one_thread": None, "many_threads": 4}
WAITING = 20  # messages the measured session (the second) has not acknowledged


def day_span(n: int, now_ms: int | None = None) -> tuple[int, int]:
    """(first ms, step ms) for ``n`` events today (UTC), from just after midnight to a minute before now."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    midnight = now_ms - now_ms % 86_400_000
    first, last = midnight + 1000, now_ms - 60_000
    if last <= first:  # (just after midnight: pack them closer)
        last = first + 1
    return first, max(0, (last - first) // max(1, n))


def thread_of(shape: str, i: int) -> str:
    per = PER_THREAD[shape]
    return "thread_shape-one" if per is None else f"thread_shape-{i // per:06d}"


def build(path: Path, shape: str, n: int) -> dict:
    """A fresh repo under ``path``: two sessions, ``n`` messages in ``shape``, old ones acknowledged."""
    t0 = time.monotonic()
    gen.make_repo(path, "shapes")
    ws = gen.GenWorkspace(path)
    first, step = day_span(n + 2)
    from handoff.store import files as store
    real_fsync, real_local = os.fsync, store.atomic_write_local
    os.fsync = lambda fd: None
    store.atomic_write_local = lambda p, data: None
    received: dict[str, list[str]] = {sid: [] for _a, sid in SESSIONS}
    try:
        for k, (agent, sid) in enumerate(SESSIONS):
            os.environ["HANDOFF_NOW"] = model.format_ts(first + k * step)
            ev = ws.write(lambda st, agent=agent, sid=sid: session_ops.session_open(
                st, agent=agent, channels=[CHANNEL], name=None, session_id=sid, workspace=None), commit=False).events[0]
            local.remember_session(ws, {"session_id": sid, "peer_id": ev["from"], "agent": agent, "name": None,
                                        "open_event_id": ev["id"]})
        for i in range(n):
            os.environ["HANDOFF_NOW"] = model.format_ts(first + (i + 2) * step)
            sid, other = SESSIONS[i % 2][1], SESSIONS[1 - i % 2][1]
            ev = ws.write(lambda st, i=i, sid=sid: message_ops.send(
                st, st["sessions"][sid], workspace_id=ws.workspace_id, now_ms=0, channel=CHANNEL, kind="say",
                body={"text": f"message {i} of the shape bench: {gen.WORDS[i % len(gen.WORDS)]}"},
                surface="thread", thread=thread_of(shape, i), fresh=clock.new_ulid()), commit=False).events[0]
            received[other].append(ev["id"])
    finally:
        os.environ.pop("HANDOFF_NOW", None)
        os.fsync, store.atomic_write_local = real_fsync, real_local
    # everything acknowledged but the measured session's last WAITING messages (the bench's usual inbox)
    received[SESSIONS[1][1]] = received[SESSIONS[1][1]][:-WAITING]
    write_acks(path, received)
    written = time.monotonic() - t0
    gen.commit_all(path, f"bench: {shape} {n}")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, check=True,
                            text=True).stdout.strip()
    return {"shape": shape, "events": n, "day": model.format_ts(first)[:10], "commit": commit,
            "seconds": round(written, 1), "total_seconds": round(time.monotonic() - t0, 1), "acks": received}


def write_acks(path: Path, received: dict[str, list[str]]) -> None:
    """Each session's received messages acknowledged, in the file and format ``local.add_acks`` appends to."""
    d = path / ".git" / "handoff" / "acks"
    d.mkdir(parents=True, exist_ok=True)
    for sid, ids in received.items():
        (d / f"{sid}.txt").write_text("".join(f"{m}\n" for m in ids))


# --------------------------------------------------------------------------- measuring (own process)

MEASURE = r"""
import json, statistics, sys, time
repo, sid, inbox_runs, send_runs, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
channel, thread = sys.argv[6], sys.argv[7]
from handoff import Handoff
hf = Handoff(repo)
me = hf.session(sid)
waiting = me.inbox()["count"]
for _ in range(3):
    me.inbox()
ts = []
for _ in range(inbox_runs):
    t = time.perf_counter(); me.inbox(); ts.append(time.perf_counter() - t)
ss = []
for i in range(send_runs):
    t = time.perf_counter(); r = me.send(channel, text=f"bench api send {tag} {i}", thread=thread); ss.append(time.perf_counter() - t)
print(json.dumps({"inbox_ms": 1000 * statistics.median(ts), "send_ms": 1000 * statistics.median(ss),
                  "waiting": waiting}))
"""


def measure(repo: Path, env: dict, *, sid: str = SESSIONS[1][1], channel: str = CHANNEL,
            thread: str = "thread_shape-one", inbox_runs: int = 30, send_runs: int = 8, tag: str = "") -> dict:
    """Warm API inbox and API send (committing) of one session, the median of each, in a fresh process:
    ``{"inbox_ms", "send_ms", "waiting"}``."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(repo), sid, str(inbox_runs), str(send_runs), tag,
                          channel, thread], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- checking the shape

def check_against_api(base: Path, n: int = 50) -> dict:
    """Build ``one_thread`` with ``n`` messages twice, here and through the API (``Session.send`` /
    ``Session.ack``), and compare what matters: the files' directories and names by kind, the day folder,
    the threads, and what each session has acknowledged (as counts of the other side's messages)."""
    from handoff import Handoff
    fast, slow = base / "fast", base / "api"
    for p in (fast, slow):
        if p.exists():
            import shutil
            shutil.rmtree(p)
    info = build(fast, "one_thread", n)
    gen.make_repo(slow, "shapes")
    hf = Handoff(slow)
    sess = [hf.open_session(agent, [CHANNEL], session_id=sid) for agent, sid in SESSIONS]
    for i in range(n):
        sess[i % 2].send(CHANNEL, text=f"message {i}", thread=thread_of("one_thread", i))
    for k, s in enumerate(sess):
        ids = [e["id"] for e in s.inbox()["entries"]]
        ids = ids[:-WAITING] if k == 1 else ids
        if ids:
            s.ack(*ids)

    def shape_of(repo: Path) -> dict:
        files = sorted(str(p.relative_to(repo / ".handoffs")) for p in (repo / ".handoffs" / "events").rglob("*.yaml"))
        dirs = sorted({f.rsplit("/", 1)[0] for f in files})
        kinds = sorted(".".join(f.rsplit("/", 1)[1].split(".")[1:4]) for f in files)
        acks = {sid: len((repo / ".git" / "handoff" / "acks" / f"{sid}.txt").read_text().split())
                for _a, sid in SESSIONS}
        from handoff.app.workspace import Workspace
        st = Workspace(repo).state()
        threads = sorted(b["thread_id"] for b in st["threads"].values())
        waiting = Handoff(repo).session(SESSIONS[1][1]).inbox()["count"]
        return {"dirs": dirs, "kinds": kinds, "acks": acks, "threads": threads, "waiting": waiting}

    got, want = shape_of(fast), shape_of(slow)
    return {"same": got == want, "fast": got, "api": want, "generated_s": info["seconds"]}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        import tempfile
        res = check_against_api(Path(tempfile.mkdtemp(prefix="shape-check-")))
        print(json.dumps(res, indent=1))
        sys.exit(0 if res["same"] else 1)
    shape, n, where = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    res = build(where, shape, n)
    res.pop("acks")
    print(json.dumps(res))
    print(json.dumps(measure(where, dict(os.environ, PYTHONPATH=str(HERE.parent)), thread=thread_of(shape, 0))))
