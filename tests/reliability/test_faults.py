"""Full disk, read-only directory, missing git identity, locked index.

The contract under faults: a write either fails with an error naming the
cause and leaves nothing behind (no event file, no commit, no index change),
or succeeds (exit 0) with the event on disk, committed or saying why not.
Never half of one and half of the other, never a traceback.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import make_repo
from support.reliability import child_env, event_files, fsck_clean, git, no_temp_files

IS_ROOT = os.geteuid() == 0


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m"):
    """A real filesystem of ``size`` bytes (tmpfs), or skip where mounting is not allowed."""
    path.mkdir(parents=True)
    if not (IS_ROOT and _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path):
    """Make a directory read-only for this process (a read-only bind mount as root, chmod otherwise)."""
    if IS_ROOT:
        if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,bind,ro", str(path))):
            pytest.skip("needs a read-only bind mount")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def snapshot(repo) -> tuple:
    """Everything a failed write must leave exactly as it was."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # git status must not itself need disk space
    return (git(repo.path, "rev-parse", "HEAD"),
            git(repo.path, "status", "--porcelain", "--untracked-files=all", env=env),
            git(repo.path, "diff", "--cached", env=env), sorted(event_files(repo.path)),
            (repo.path / ".git" / "index").read_bytes())


def send(repo, sid: str, text: str, *extra: str):
    return repo.h("send", "--session", sid, "--channel", "general", "--text", text, "-o", "json", *extra)


def assert_contract(repo, before: tuple, r, text: str) -> str:
    """Exit != 0: a named error and nothing changed.  Exit 0: the event is there, committed or saying why not."""
    assert "Traceback" not in r.err, r.err
    if r.code != 0:
        err = r.json["error"]
        assert err["reason_code"] and err["message"] and err["hint"]
        assert snapshot(repo) == before, f"failed write changed something: {err}"
        no_temp_files(repo.path)
        return err["reason_code"]
    out = r.json
    assert (repo.path / out["paths"][0]).is_file()
    assert out["committed"] or out["commit_skipped"], out
    if not out["committed"]:
        assert "space" in out["commit_skipped"], out["commit_skipped"]  # the reason is named
    return "committed" if out["committed"] else "skipped"


def fill(filler: Path) -> None:
    """Append to ``filler`` until the filesystem has no byte left."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)


def test_full_disk(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        repo = make_repo(disk / "repo")
        sid = repo.session("writer", "general", sid="sess_w")["session_id"]
        repo.ok("send", "--session", sid, "--channel", "general", "--text", "before the disk fills")
        filler = disk / "filler"
        fill(filler)
        before = snapshot(repo)
        r = send(repo, sid, "on a full disk")
        assert r.code != 0
        err = r.json["error"]
        assert err["reason_code"] == "disk_full", err
        assert "no space" in err["message"].lower()
        assert snapshot(repo) == before
        no_temp_files(repo.path)

        # Every amount of free space between nothing and enough: the contract holds at each.
        outcomes = {}
        size = filler.stat().st_size
        for free_kib in (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256):
            with open(filler, "r+b") as fh:
                fh.truncate(max(0, size - free_kib * 1024))
            before = snapshot(repo)
            r = send(repo, sid, f"with {free_kib} KiB free")
            outcomes[free_kib] = assert_contract(repo, before, r, f"{free_kib} KiB")
            fill(filler)  # full again for the next step
            size = filler.stat().st_size
        print(f"\nfull disk outcomes by KiB free: {outcomes}")
        assert "disk_full" in outcomes.values() and set(outcomes.values()) <= {"disk_full", "committed", "skipped"}
        filler.unlink()
        r = repo.j("send", "--session", sid, "--channel", "general", "--text", "space again")
        assert r["committed"] is True
        assert git(repo.path, "status", "--porcelain", "--", ".handoffs") == ""
        fsck_clean(repo.path)


def test_read_only_events_directory(repo):
    sid = repo.session("writer", "general", sid="sess_w")["session_id"]
    repo.ok("send", "--session", sid, "--channel", "general", "--text", "first")
    events = repo.path / ".handoffs" / "events"
    before = snapshot(repo)
    with read_only(events):
        r = send(repo, sid, "into a read-only directory")
        assert r.code != 0
        err = r.json["error"]
        assert err["reason_code"] == "permission_denied", err
        assert ".handoffs/events" in err["message"]
        assert snapshot(repo) == before
    r = repo.j("send", "--session", sid, "--channel", "general", "--text", "writable again")
    assert r["committed"] is True and r["commit_skipped"] is None
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    fsck_clean(repo.path)


def test_read_only_git_directory(repo):
    sid = repo.session("writer", "general", sid="sess_w")["session_id"]
    before = snapshot(repo)
    with read_only(repo.path / ".git"):
        r = send(repo, sid, "with a read-only .git")
        assert r.code != 0
        err = r.json["error"]
        assert err["reason_code"] == "permission_denied", err
        assert ".git" in err["message"]
    assert snapshot(repo) == before
    assert repo.j("send", "--session", sid, "--channel", "general", "--text", "ok")["committed"] is True


def _no_identity_env(home: Path) -> dict:
    env = child_env({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"})
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        env.pop(k, None)
    return env


def test_missing_git_identity(repo, tmp_path):
    sid = repo.session("writer", "general", sid="sess_w")["session_id"]
    git(repo.path, "config", "user.useConfigOnly", "true")  # no guessing an identity from the host name
    home = tmp_path / "emptyhome"
    home.mkdir()
    before = snapshot(repo)
    proc = subprocess.run([sys.executable, "-m", "handoff", "send", "--session", sid, "--channel", "general",
                           "--text", "who am I", "-o", "json"], cwd=repo.path, capture_output=True, text=True,
                          env=_no_identity_env(home))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    import json
    err = json.loads(proc.stdout)["error"]
    assert err["reason_code"] == "no_git_identity"
    assert "user.email" in err["hint"]
    assert snapshot(repo) == before
    # human output says the same, without a traceback
    proc = subprocess.run([sys.executable, "-m", "handoff", "send", "--session", sid, "--channel", "general",
                           "--text", "who am I"], cwd=repo.path, capture_output=True, text=True,
                          env=_no_identity_env(home))
    assert proc.returncode == 1 and "identity" in proc.stderr and "Traceback" not in proc.stderr
    # --no-commit needs no identity
    proc = subprocess.run([sys.executable, "-m", "handoff", "send", "--session", sid, "--channel", "general",
                           "--text", "uncommitted", "--no-commit", "-o", "json"], cwd=repo.path,
                          capture_output=True, text=True, env=_no_identity_env(home))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["committed"] is False


def test_locked_index(repo):
    sid = repo.session("writer", "general", sid="sess_w")["session_id"]
    lock = repo.path / ".git" / "index.lock"
    lock.write_bytes(b"")  # another git process (or a crashed one) holds the index
    before = snapshot(repo)
    r = send(repo, sid, "while the index is locked")
    assert r.code != 0
    err = r.json["error"]
    assert err["reason_code"] == "index_locked" and str(lock) in err["message"] and str(lock) in err["hint"]
    assert snapshot(repo) == before
    lock.unlink()

    # a lock that goes away while we wait (git status refreshing the index) is simply waited for
    lock.write_bytes(b"")
    threading.Timer(0.5, lock.unlink).start()
    r = repo.j("send", "--session", sid, "--channel", "general", "--text", "after a short lock")
    assert r["committed"] is True
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_stale_ref_lock_is_named(repo):
    """A branch lock left by a crashed git: the event is written, the commit is skipped naming the lock."""
    sid = repo.session("writer", "general", sid="sess_w")["session_id"]
    lock = repo.path / ".git" / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")
    r = repo.j("send", "--session", sid, "--channel", "general", "--text", "branch locked")
    assert r["committed"] is False and "main.lock" in r["commit_skipped"]
    assert (repo.path / r["paths"][0]).is_file()
    lock.unlink()
    r2 = repo.j("send", "--session", sid, "--channel", "general", "--text", "unlocked")
    assert r2["committed"] is True
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    assert r["paths"][0] in git(repo.path, "show", "--name-only", "--format=", "HEAD")
