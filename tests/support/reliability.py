"""Shared helpers for the reliability suite: real processes, repository invariants.

Everything here drives the real tool: the console script or ``python -m
handoff`` in separate processes, or ``handoff.faces.cli.main`` in a loop inside one
child process (to avoid paying interpreter start-up 200 times).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = os.environ.get("HANDOFF_HEAVY") == "1"


def scale(default: int, heavy: int) -> int:
    return heavy if HEAVY else default


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("HANDOFF_SESSION", None)
    env.update(extra or {})
    return env


def console_script() -> list[str]:
    """The real console entry point when installed beside this interpreter, else ``python -m handoff``."""
    script = Path(sys.executable).parent / "handoff"
    if script.exists():
        return [str(script)]
    found = shutil.which("handoff")
    return [found] if found else [sys.executable, "-m", "handoff"]


# A child that sends N events through the real CLI entry (handoff.faces.cli.main),
# printing each event id on its own line only once the command has returned 0.
SEND_LOOP = r"""
import io, json, os, sys, contextlib
from handoff.faces.cli import main
repo, session, channel, count, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
for i in range(count):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["send", "--repo", repo, "--session", session, "--channel", channel,
                   "--text", f"{tag} message {i}", "-o", "json"])
    if rc != 0:
        sys.stderr.write(f"send {i} failed with {rc}: {buf.getvalue()}\n")
        sys.exit(rc)
    out = json.loads(buf.getvalue())
    if not out["committed"]:
        sys.stderr.write(f"send {i} ({out['id']}) not committed: {out.get('commit_skipped')}\n")
    os.write(1, (out["id"] + " " + str(out["committed"]) + "\n").encode())
"""


def spawn_send_loop(repo: Path, session: str, channel: str, count: int, tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SEND_LOOP, str(repo), session, channel, str(count), tag],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


def spawn_console_loop(repo: Path, session: str, channel: str, count: int, tag: str) -> subprocess.Popen:
    """A shell loop running the installed console script once per event (real start-up every time)."""
    cmd = " ".join(shlex.quote(c) for c in console_script())
    parse = shlex.quote("import json,sys; d=json.load(sys.stdin); print(d['id'], d['committed'])")
    script = (f"for i in $(seq 0 {count - 1}); do "
              f"{cmd} send --session {session} --channel {channel} --text \"{tag} message $i\" -o json "
              f"| {shlex.quote(sys.executable)} -c {parse} || exit 1; done")
    return subprocess.Popen(["bash", "-o", "pipefail", "-c", script], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())


def collect(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[str, bool]]:
    """Wait for every process; all must succeed. Returns (event id, committed) pairs they reported."""
    sent = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"writer failed ({p.returncode}): {err[-2000:]}"
        if err.strip():
            print(f"writer {p.args[-1]}: {err[-2000:]}")
        for line in out.splitlines():
            eid, committed = line.split()
            sent.append((eid, committed == "True"))
    return sent


def git(cwd, *args, check=True, env=None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def wait_for_gc(path, timeout: float = 120) -> None:
    """Let a background ``git gc --auto`` finish: a person's ``git commit`` starts one once loose objects pile
    up, and it packs and prunes loose objects while ``fsck`` lists them ("unable to mmap ...")."""
    import time
    common = Path(git(path, "rev-parse", "--git-common-dir").strip())
    if not common.is_absolute():
        common = Path(path) / common
    deadline = time.monotonic() + timeout
    while (common / "gc.pid").exists() or (common / "gc.pid.lock").exists():
        try:
            pid = int((common / "gc.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):  # gone meanwhile, half-written, or left by a killed gc
            if not (common / "gc.pid.lock").exists():
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"git gc still running after {timeout}s ({common / 'gc.pid'})")
        time.sleep(0.1)


def fsck_clean(path) -> None:
    wait_for_gc(path)
    proc = subprocess.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=path, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), f"git fsck: {proc.stdout}{proc.stderr}"


def event_files(worktree: Path) -> dict[str, str]:
    """event id -> path (relative to the worktree) of every event file on disk."""
    out = {}
    for p in (worktree / ".handoffs" / "events").rglob("*.yaml"):
        eid = p.name.split(".", 1)[0]
        assert eid not in out, f"two files for {eid}"
        out[eid] = str(p.relative_to(worktree))
    return out


def added_paths(worktree: Path, rev: str = "HEAD") -> Counter:
    """How many commits reachable from ``rev`` added each path (a path added twice was deleted in between)."""
    text = git(worktree, "log", rev, "--format=", "--name-only", "--diff-filter=A", "--no-renames")
    return Counter(line for line in text.splitlines() if line.strip())


def deleted_paths(worktree: Path, rev: str = "HEAD") -> list[str]:
    text = git(worktree, "log", rev, "--format=", "--name-only", "--diff-filter=D", "--no-renames")
    return [line for line in text.splitlines() if line.strip()]


def head_tree(worktree: Path, rev: str = "HEAD") -> set[str]:
    return set(git(worktree, "ls-tree", "-r", "--name-only", rev).splitlines())


def handoff_commits_touch_only_handoffs(worktree: Path, rev: str = "HEAD") -> None:
    text = git(worktree, "log", rev, "--format=@@%s", "--name-only", "--no-renames")
    subject = None
    for line in text.splitlines():
        if line.startswith("@@"):
            subject = line[2:]
        elif line.strip() and subject and subject.startswith("handoff:"):
            assert line.startswith(".handoffs/"), f"handoff commit {subject!r} touched {line}"


def parse_all(worktree: Path) -> None:
    """Every event file on disk decodes cleanly (strict YAML, schema, name matches content)."""
    from handoff.core import reducer
    root = worktree / ".handoffs"
    for p in (root / "events").rglob("*"):
        if p.is_file():
            rec = reducer.decode(str(p.relative_to(root)), p.read_bytes())
            assert "event" in rec, f"{p}: {rec.get('error')}"


def no_temp_files(worktree: Path) -> None:
    leftovers = [str(p) for p in (worktree / ".handoffs").rglob("*") if p.name.endswith((".part", ".tmp"))
                 or (p.name.startswith(".") and p.name not in (".gitattributes", ".gitignore"))]
    assert not leftovers, f"temporary files visible under .handoffs/: {leftovers}"


def status_json(worktree: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "handoff", "status", "-o", "json"], cwd=worktree,
                          capture_output=True, text=True, env=child_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
