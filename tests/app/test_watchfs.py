"""Tests for handoff.app.watchfs with real observers, real files and real git.

No mocks: every test drives watchdog through the kernel (inotify) or a real
PollingObserver.  Timing is only bounded generously (5 s); latencies are printed
(run with ``-s`` to see them).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from handoff.app.watchfs import FileWatcher

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "advice.detachedHead=false"]
GIT_ENV = dict(os.environ, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")  # hermetic
ROOT = Path(__file__).resolve().parents[2]
SLACK = 5.0  # generous upper bound for "signals"; real latencies are printed


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, *, handoffs: bool = True) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("readme\n")
    if handoffs:
        publish(path, "seed")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return path


def publish(worktree: Path, name: str, day: str = "2025-01/02") -> Path:
    """Write like the store does: finish a temp file outside the tree, hard-link it in."""
    staging = worktree.parent / "staging"
    staging.mkdir(exist_ok=True)
    tmp = staging / f"{name}.tmp"
    tmp.write_text(f"id: {name}\nkind: note\n")
    target = worktree / ".handoffs" / "events" / day / f"{name}.note.alice.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(tmp, target)
    tmp.unlink()
    return target


def drain(w: FileWatcher, quiet: float = 0.3, limit: int = 50) -> int:
    """Consume pending signals until `quiet` seconds pass without one."""
    for n in range(limit):
        if not w.wait(quiet):
            return n
    raise AssertionError("watcher never settled")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


@pytest.fixture
def watch():
    """Factory: start a FileWatcher on a worktree; always stopped at teardown."""
    started: list[FileWatcher] = []

    def factory(worktree: Path, **kw) -> FileWatcher:
        w = FileWatcher(worktree, worktree / ".git", **kw)
        w.start()
        started.append(w)
        return w

    yield factory
    for w in started:
        w.stop()


MODES = [pytest.param({"poll": False}, id="inotify"), pytest.param({"poll": True, "poll_interval": 0.1}, id="polling")]


@pytest.mark.parametrize("kw,n", [({"poll": False}, 50), ({"poll": True, "poll_interval": 0.1}, 15)],
                         ids=["inotify", "polling"])
def test_single_file_latency(tmp_path, watch, kw, n):
    repo = make_repo(tmp_path / "repo")
    w = watch(repo, **kw)
    assert w.mode == ("polling" if kw["poll"] else "inotify") and w.fallback_reason is None
    drain(w)
    latencies = []
    for i in range(n):
        t0 = time.monotonic()
        publish(repo, f"e{i:03d}", day=f"2025-01/{i % 3 + 1:02d}")
        assert w.wait(SLACK), f"file {i} not signalled"
        latencies.append((time.monotonic() - t0) * 1000)
    print(f"\n[{w.mode}] single-file latency over {n}: p50={pct(latencies, .5):.1f} ms "
          f"p99={pct(latencies, .99):.1f} ms max={max(latencies):.1f} ms")


@pytest.mark.parametrize("kw", MODES)
def test_burst_of_200_signals_then_settles(tmp_path, watch, kw):
    repo = make_repo(tmp_path / "repo")
    w = watch(repo, **kw)
    drain(w)
    t0 = time.monotonic()
    for i in range(200):
        publish(repo, f"b{i:03d}", day=f"2025-02/{i % 7 + 1:02d}")
    assert w.wait(SLACK)
    extra = drain(w, 0.5)
    print(f"\n[{w.mode}] 200-file burst: {1 + extra} signal(s) in {time.monotonic() - t0:.2f} s")
    assert extra < 20
    assert not w.wait(0.2)


@pytest.mark.parametrize("kw", MODES)
def test_ignored_names_do_not_signal(tmp_path, watch, kw):
    repo = make_repo(tmp_path / "repo")
    day = repo / ".handoffs" / "events" / "2025-01" / "02"
    (repo / ".handoffs" / ".staging").mkdir()
    (repo / "src").mkdir()
    w = watch(repo, **kw)
    drain(w)
    (day / ".hidden.note.alice.yaml").write_text("x")           # dot file
    (day / "x.note.alice.yaml.part").write_text("x")            # unfinished temp
    (day / "notes.txt").write_text("x")                         # not yaml
    (repo / ".handoffs" / ".staging" / "y.note.bob.yaml").write_text("x")  # dot dir
    (repo / ".handoffs" / ".tmpdir").mkdir()                    # dot dir created
    (repo / "README.yaml").write_text("x")                      # outside .handoffs
    (repo / "src" / "z.yaml").write_text("x")
    (repo / ".git" / "handoff-notes.yaml").write_text("x")      # git dir, not a git state file
    for f in day.iterdir():                                      # readers must not wake us
        f.read_bytes()
    (day / "notes.txt").unlink()
    assert not w.wait(0.6)


def test_git_state_files_signal(tmp_path, watch):
    repo = make_repo(tmp_path / "repo")
    w = watch(repo, poll=False)
    drain(w)
    git(repo, "branch", "-q", "side")
    assert not w.wait(0.4)  # refs/heads/* is not watched
    git(repo, "checkout", "-q", "side")  # rewrites HEAD (via HEAD.lock rename)
    assert w.wait(SLACK)


@pytest.mark.parametrize("kw", MODES)
def test_checkout_without_handoffs_and_back_rearms(tmp_path, watch, kw):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "bare")
    git(repo, "rm", "-q", "-r", ".handoffs")
    git(repo, "commit", "-q", "-m", "no handoffs")
    git(repo, "checkout", "-q", "main")
    w = watch(repo, **kw)
    drain(w)

    git(repo, "checkout", "-q", "bare")
    assert not (repo / ".handoffs").exists()
    assert w.wait(SLACK)
    drain(w)
    git(repo, "checkout", "-q", "main")
    assert (repo / ".handoffs").is_dir()
    assert w.wait(SLACK)
    drain(w)
    assert w.rearm_count >= 2

    publish(repo, "after-existing-dir")              # dir restored by checkout
    assert w.wait(SLACK), "deaf after .handoffs was deleted and recreated"
    drain(w)
    publish(repo, "after-new-dir", day="2025-03/09")  # brand-new bucket
    assert w.wait(SLACK)


@pytest.mark.parametrize("kw", MODES)
def test_handoffs_created_after_start(tmp_path, watch, kw):
    repo = make_repo(tmp_path / "repo", handoffs=False)
    w = watch(repo, **kw)
    assert not w.wait(0.3)
    publish(repo, "first")              # creates .handoffs/ and its buckets
    assert w.wait(SLACK)
    drain(w)
    publish(repo, "second")             # only the recursive watch can see this one
    assert w.wait(SLACK)


def test_git_pull_of_300_files_signals(tmp_path, watch):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    a = make_repo(tmp_path / "a")
    git(a, "remote", "add", "origin", str(remote))
    git(a, "push", "-q", "-u", "origin", "main")
    git(tmp_path, "clone", "-q", str(remote), "b")
    b = tmp_path / "b"
    for i in range(300):
        publish(b, f"p{i:03d}", day=f"2025-04/{i % 10 + 1:02d}")
    git(b, "add", "-A")
    git(b, "commit", "-q", "-m", "300 events")
    git(b, "push", "-q")

    w = watch(a, poll=False)
    drain(w)
    t0 = time.monotonic()
    git(a, "pull", "-q", "--ff-only")
    assert w.wait(SLACK)
    first = time.monotonic() - t0
    extra = drain(w)
    print(f"\n[inotify] git pull of 300 files: first signal after {first * 1000:.0f} ms, {extra} more")
    assert len(list((a / ".handoffs").rglob("*.yaml"))) == 301


def test_periodic_reconcile_tick(tmp_path, watch):
    repo = make_repo(tmp_path / "repo")
    w = watch(repo, poll=False, rescan_interval=0.3)
    t0 = time.monotonic()
    assert w.wait(SLACK)
    assert w.wait(SLACK)
    assert time.monotonic() - t0 >= 0.5


def test_inotify_overflow_still_signals(tmp_path, watch):
    """Overflow the kernel queue with ignored names only: without the overflow
    hook nothing relevant arrives, so the signal must come from the hook."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 50_000:
        pytest.skip(f"max_queued_events={limit} too large to overflow quickly")
    repo = make_repo(tmp_path / "repo")
    spool = repo / ".handoffs" / "spool"
    spool.mkdir()
    a, b = bytes(spool / ".a"), bytes(spool / ".b")
    for name in (a, b):
        Path(os.fsdecode(name)).write_text("x")
    w = watch(repo, poll=False, rescan_interval=600)
    drain(w)  # the reader thread is idle, blocked in poll()
    # Flood the queue while holding the GIL, so watchdog's reader thread cannot
    # drain it: libc chmod() through ctypes.PyDLL keeps the GIL during the call,
    # and a huge switch interval stops the interpreter from handing it over.
    # Each chmod of an ignored dot file queues one IN_ATTRIB (alternating the two
    # files defeats the kernel's merging of identical consecutive events).
    chmod = ctypes.PyDLL(None).chmod
    old = sys.getswitchinterval()
    sys.setswitchinterval(60)
    try:
        failed = any(chmod(a, 0o644) or chmod(b, 0o644) for _ in range(limit))  # 2x the queue
    finally:
        sys.setswitchinterval(old)
    assert not failed
    t0 = time.monotonic()
    assert w.wait(30), "overflow not signalled"  # watchdog first chews through the backlog
    print(f"\n[inotify] overflow signalled {time.monotonic() - t0:.1f} s after the flood")
    assert w.overflow_count >= 1
    drain(w)
    publish(repo, "after-overflow")
    assert w.wait(SLACK)


def test_auto_mode_falls_back_to_polling_on_emfile(tmp_path):
    """Exhaust file descriptors in a child process so inotify setup fails for real."""
    repo = make_repo(tmp_path / "repo")
    script = textwrap.dedent(f"""
        import os, resource, sys
        from handoff.app.watchfs import FileWatcher
        sys.path.insert(0, {os.fspath(Path(__file__).parent)!r})
        from test_watchfs import publish
        from pathlib import Path
        repo = Path({os.fspath(repo)!r})
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        fillers = []
        try:
            while True:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        os.close(fillers.pop()); os.close(fillers.pop())  # enough for inotify_init, not its pipe
        try:
            FileWatcher(repo, repo / ".git", poll=False).start()
            print("poll=False did not raise")
        except OSError:
            pass
        os.close(fillers.pop())  # watchdog leaks the inotify fd of the failed attempt
        w = FileWatcher(repo, repo / ".git", poll_interval=0.1)
        w.start()
        for fd in fillers:
            os.close(fd)
        print(w.mode, w.fallback_reason)
        publish(repo, "fallback")
        print("signalled", w.wait(5))
        w.stop()
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "did not raise" not in out.stdout
    assert out.stdout.startswith("polling ") and "Errno 24" in out.stdout, out.stdout
    assert "signalled True" in out.stdout


@pytest.mark.parametrize("kw", MODES)
def test_stop_joins_every_thread(tmp_path, kw):
    repo = make_repo(tmp_path / "repo")
    before = set(threading.enumerate())
    w = FileWatcher(repo, repo / ".git", **kw)
    with w:
        assert len(set(threading.enumerate()) - before) >= 3
        publish(repo, "x")
        assert w.wait(SLACK)
        shutil.rmtree(repo / ".handoffs")  # force a re-arm
        publish(repo, "y")
        assert w.wait(SLACK)
        result = []
        waiter = threading.Thread(target=lambda: result.append(w.wait(None)))
        drain(w)
        waiter.start()
        time.sleep(0.1)
    waiter.join(SLACK)
    assert not waiter.is_alive() and result == [False], "stop() must release blocked waiters"
    w.stop()  # idempotent
    assert not w.wait(0)
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []
