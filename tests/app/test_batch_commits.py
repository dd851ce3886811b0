"""Commit modes: ``commit: batch`` (publish now, one commit later) and ``commit: off`` with the hook.

Real CLI, real repositories, real processes: the background flusher is a real detached process, the
concurrent writers are two processes, the crash is a SIGKILL of a writer's whole process group.
No timing assertions: the tests poll with generous timeouts.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.reliability import child_env, collect, fsck_clean, spawn_send_loop


def set_config(repo, mode: str, window: str = "10m", background: bool = False, commit: bool = True) -> None:
    cfg = repo.path / ".handoffs" / "config.yaml"
    text = cfg.read_text().replace("commit: 'auto'", f"commit: '{mode}'")
    text += f"batch:\n  window: '{window}'\n  background: {'true' if background else 'false'}\n"
    cfg.write_text(text)
    if commit:
        repo.git("commit", "-qam", f"commit: {mode}")


def commits(repo) -> int:
    return int(repo.git("rev-list", "--count", "HEAD").strip())


def in_head(repo) -> set[str]:
    return set(repo.git("ls-tree", "-r", "--name-only", "HEAD", "--", ".handoffs/events").split())


def on_disk(repo) -> set[str]:
    return {str(p.relative_to(repo.path)) for p in repo.event_files()}


def pending_dir(repo) -> Path:
    return Path(repo.git("rev-parse", "--absolute-git-dir").strip()) / "handoff" / "pending"


def markers(repo) -> list[str]:
    d = pending_dir(repo)
    return sorted(os.listdir(d)) if d.is_dir() else []


def wait_until(predicate, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_burst_lands_as_one_commit_after_flush(repo):
    set_config(repo, "batch")
    (repo.path / "README.txt").write_text("the user's staged work\n")
    repo.git("add", "README.txt")
    (repo.path / "notes.txt").write_text("the user's untracked work\n")
    before = commits(repo)
    a = repo.session("alice", "dev")
    assert a["committed"] is False and a["commit_pending"] is True
    sent = [repo.j("send", "--session", a["session_id"], "--channel", "dev", "--text", f"m{i}") for i in range(5)]
    assert all(s["committed"] is False and s["commit_pending"] is True and s["commit"] is None for s in sent)
    assert commits(repo) == before
    st = repo.j("status")
    assert st["commit_mode"] == "batch" and st["commit_pending"] == 6
    assert repo.j("inbox", "--session", a["session_id"])["session_id"] == a["session_id"]  # reads see them
    doctor = {c["check"]: c for c in repo.h("doctor", "-o", "json").json["checks"]}
    assert doctor["uncommitted events"]["status"] == "ok" and "batched" in doctor["uncommitted events"]["message"]

    assert repo.j("verify", "--base", "HEAD")["commit_pending"] == 6  # not in the range yet, and it says so
    assert repo.j("report", "--base", "HEAD")["commit_pending"] == 6
    r = repo.j("flush")
    assert r["committed"] is True and r["events"] == 6 and r["pending"] == 0
    assert "commit_pending" not in repo.j("verify", "--base", "HEAD~1")
    assert commits(repo) == before + 1
    files = repo.git("show", "--name-only", "--format=", "HEAD").split()
    assert sorted(files) == sorted(r["paths"]) == sorted(on_disk(repo))  # only our .handoffs/ paths
    assert repo.git("log", "-1", "--format=%s").startswith("handoff: 6 events batched")
    assert repo.git("diff", "--cached", "--name-only").split() == ["README.txt"]  # still staged, not committed
    assert (repo.path / "notes.txt").exists() and "notes.txt" not in files
    assert markers(repo) == [] and repo.j("status")["commit_pending"] == 0
    again = repo.j("flush")
    assert again["committed"] is False and again["events"] == 0 and again["commit"] is None
    assert commits(repo) == before + 1


def test_a_write_past_the_window_commits_everything_pending(repo):
    set_config(repo, "batch", window="0.3s")
    before = commits(repo)
    a = repo.session("alice", "dev")["session_id"]
    first = repo.j("send", "--session", a, "--channel", "dev", "--text", "one")
    assert first["commit_pending"] is True
    wait_until(lambda: time.time() - min(os.stat(pending_dir(repo) / m).st_mtime for m in markers(repo)) > 0.5,
               what="the window to pass")
    late = repo.j("send", "--session", a, "--channel", "dev", "--text", "two")
    assert late["committed"] is True and late["commit_pending"] is False
    assert commits(repo) == before + 1 and in_head(repo) == on_disk(repo) and markers(repo) == []
    assert repo.git("log", "-1", "--format=%s").startswith("handoff: 3 events batched (2 say, session-open)")


def test_explicit_commit_and_env_override_the_mode(repo):
    set_config(repo, "batch")
    a = repo.session("alice", "dev")["session_id"]
    now = repo.j("send", "--session", a, "--channel", "dev", "--text", "now", "--commit")
    assert now["committed"] is True and in_head(repo) == on_disk(repo)  # --commit takes the batched ones too
    auto = repo.j("send", "--session", a, "--channel", "dev", "--text", "env", env={"HANDOFF_COMMIT": "auto"})
    assert auto["committed"] is True
    assert repo.j("status", env={"HANDOFF_COMMIT": "off"})["commit_mode"] == "off"


def test_the_background_flusher_commits_without_another_command(repo):
    set_config(repo, "batch", window="1s", background=True)
    before = commits(repo)
    a = repo.session("alice", "dev")["session_id"]
    for i in range(3):
        assert repo.j("send", "--session", a, "--channel", "dev", "--text", f"m{i}")["commit_pending"] is True
    wait_until(lambda: markers(repo) == [] and in_head(repo) == on_disk(repo), what="the background flusher")
    assert before < commits(repo) <= before + 4
    guard = pending_dir(repo).parent / "flusher"
    wait_until(lambda: not guard.exists(), what="the flusher to take its ticket out")
    assert repo.git("status", "--porcelain", "--", ".handoffs").strip() == ""


def test_a_killed_flusher_is_replaced_by_the_next_write(repo):
    set_config(repo, "batch", window="30s", background=True)
    a = repo.session("alice", "dev")["session_id"]
    guard = pending_dir(repo).parent / "flusher"
    wait_until(lambda: guard.exists() and len(guard.read_text().split()) == 3, what="a flusher")
    ticket, _deadline, pid = guard.read_text().split()
    os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: not _alive(int(pid)), what="the flusher to die")
    assert markers(repo)  # nothing committed it
    # the next write sees the dead flusher and starts another; `flush` here stands in for its wake-up
    repo.j("send", "--session", a, "--channel", "dev", "--text", "after the kill")
    wait_until(lambda: guard.exists() and guard.read_text().split()[0] != ticket, what="a new flusher")
    r = repo.j("flush")
    assert r["committed"] is True and r["events"] == 2 and in_head(repo) == on_disk(repo)
    assert not guard.exists()  # the new flusher sees its ticket gone and exits without committing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_processes_writing_in_batch_mode_lose_nothing(repo, monkeypatch):
    set_config(repo, "batch", window="0.2s", background=True)
    before = commits(repo)
    a = repo.session("alice", "dev")["session_id"]
    b = repo.session("bob", "dev")["session_id"]
    procs = [spawn_send_loop(repo.path, a, "dev", 15, "alice"), spawn_send_loop(repo.path, b, "dev", 15, "bob")]
    sent = collect(procs)
    assert len(sent) == 30
    repo.j("flush")
    head = in_head(repo)
    names = {p.rsplit("/", 1)[-1].split(".", 1)[0] for p in head}
    assert {eid for eid, _ in sent} <= names
    assert head == on_disk(repo) and markers(repo) == []
    assert commits(repo) - before < 32  # batched: fewer commits than writes (the flusher may split bursts)
    added = repo.git("log", "--diff-filter=A", "--name-only", "--format=", f"HEAD~{commits(repo) - before}..HEAD")
    assert len(added.split()) == len(set(added.split())) == 32  # each file added exactly once
    fsck_clean(repo.path)


CRASH_WRITER = r"""
import contextlib, io, json, os, sys
from handoff.faces.cli import main
repo, session, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.setpgid(0, 0)
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, b"ready\n")
i = 0
while True:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["send", "--repo", repo, "--session", session, "--channel", "dev", "--text", f"e{i}", "-o", "json"])
    if rc == 0:
        os.write(fd, (json.loads(buf.getvalue())["id"] + "\n").encode())
    i += 1
"""


@pytest.mark.parametrize("recover", ["flush", "write"])
def test_a_crash_between_publish_and_flush_is_committed_by_the_next_flush_or_write(repo, tmp_path, recover):
    set_config(repo, "batch", window="10m")
    a = repo.session("alice", "dev")["session_id"]
    rng = random.Random(recover)
    reported: list[str] = []
    for trial in range(3):
        out = tmp_path / f"out{trial}"
        proc = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(repo.path), a, str(out)],
                                env=child_env({"HANDOFF_COMMIT": "batch"}))
        wait_until(lambda out=out: out.exists() and out.read_bytes().startswith(b"ready\n"), what="the writer")
        time.sleep(rng.uniform(0.3, 1.5))
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and any git child: a power cut of the tool
        proc.wait(timeout=30)
        reported += out.read_text().splitlines()[1:]
    assert reported  # (something was written before the kills)
    if recover == "flush":
        r = repo.j("flush")
        assert r["committed"] is True
    else:
        w = repo.j("send", "--session", a, "--channel", "dev", "--text", "after the crash", "--commit")
        assert w["committed"] is True
    head = in_head(repo)
    names = {p.rsplit("/", 1)[-1].split(".", 1)[0] for p in head}
    assert set(reported) <= names  # every write that returned 0 is committed
    assert head == on_disk(repo) and markers(repo) == []  # nothing half-published, nothing left over
    assert repo.j("verify", "--base", "HEAD~1")["ok"] is True
    fsck_clean(repo.path)


def test_sync_flushes_before_pushing(clones):
    a = clones("a")
    set_config(a, "batch")
    s = a.session("alice", "dev")["session_id"]
    sent = a.j("send", "--session", s, "--channel", "dev", "--text", "to push")
    assert sent["commit_pending"] is True
    r = a.j("sync")
    assert r["flushed"]["committed"] is True and r["flushed"]["events"] == 2 and r["pushed"] is True
    b = clones("b")
    pushed = set(b.git("ls-tree", "-r", "--name-only", "HEAD", "--", ".handoffs/events").split())
    assert set(sent["paths"]) <= pushed
    assert a.j("sync")["flushed"] is None  # nothing pending: nothing flushed


def test_commit_off_lets_the_agents_own_commit_carry_the_files_through_the_hook(repo):
    set_config(repo, "off")
    repo.j("hooks", "install")
    before = commits(repo)
    a = repo.session("alice", "dev")
    sent = repo.j("send", "--session", a["session_id"], "--channel", "dev", "--text", "hi")
    assert sent["committed"] is False and sent["commit_pending"] is False and markers(repo) == []
    assert commits(repo) == before and repo.j("status")["uncommitted_events"] == 2
    (repo.path / "work.txt").write_text("the agent's work\n")
    repo.git("add", ".handoffs", "work.txt")
    done = subprocess.run(["git", "commit", "-qm", "agent: work and its handoff events"], cwd=repo.path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert set(sent["paths"]) | {a["path"]} <= in_head(repo) and commits(repo) == before + 1
    assert repo.j("status")["uncommitted_events"] == 0
    assert repo.j("flush")["committed"] is False  # nothing pending in off mode
    # the hook verifies what the agent's commit carries: an edited event is refused
    with open(repo.path / sent["paths"][0], "a") as fh:
        fh.write("# edited\n")
    blocked = subprocess.run(["git", "commit", "-qam", "edit an event"], cwd=repo.path, capture_output=True, text=True)
    assert blocked.returncode != 0 and "edited" in blocked.stdout + blocked.stderr


def test_the_mcp_flush_tool_commits_what_is_pending(repo):
    from handoff.faces.mcp import Tools
    set_config(repo, "batch")
    repo.session("alice", "dev")
    out = json.loads(Tools(str(repo.path)).call("flush"))
    assert out["committed"] is True and out["events"] == 1 and in_head(repo) == on_disk(repo)


def test_commit_mode_and_batch_settings_from_config_and_environment():
    from handoff.core.config import BATCH_WINDOW_MS, batch_settings, commit_mode
    assert commit_mode({}) == "auto" and commit_mode({"commit": "batch"}) == "batch"
    assert commit_mode({"commit": False}) == "off" and commit_mode({"commit": "no"}) == "off"
    assert commit_mode({"commit": "off"}, "batch") == "batch" and commit_mode({"commit": "batch"}, "bogus") == "batch"
    assert commit_mode({"commit": "whatever"}) == "auto"  # (as before: anything unrecognised commits)
    assert batch_settings({}) == (BATCH_WINDOW_MS, True, [])
    for raw, ms in (("2s", 2000), ("500ms", 500), ("0.25s", 250), ("1m", 60_000), (3, 3000), (0, 0)):
        assert batch_settings({"batch": {"window": raw}})[0] == ms
    for bad in ("soon", "2h", -1, True, [1]):
        window, _bg, problems = batch_settings({"batch": {"window": bad}})
        assert window == BATCH_WINDOW_MS and problems
    assert batch_settings({"batch": {"background": False}})[1] is False
    assert batch_settings({"batch": "yes"})[2]


def test_doctor_flags_bad_batch_settings(repo):
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("commit: 'auto'", "commit: 'sometimes'") + "batch:\n  window: 'soon'\n")
    checks = {c["check"]: c for c in repo.h("doctor", "-o", "json").json["checks"]}
    detail = checks[".handoffs/config.yaml"]["message"]
    assert checks[".handoffs/config.yaml"]["status"] == "fail" and "sometimes" in detail and "soon" in detail
    bad = repo.h("flush", "--after", "-1", "-o", "json")
    assert bad.code == 2 and json.loads(bad.out)["error"]["reason_code"] == "invalid_argument"


def test_batched_commits_are_handoff_commits_that_sync_rebases(clones):
    setup = clones("setup")
    set_config(setup, "batch")
    setup.git("push", "-q", "origin", "HEAD")
    a, b = clones("a"), clones("b")
    sb = b.session("bob", "dev")["session_id"]
    b.j("send", "--session", sb, "--channel", "dev", "--text", "from b")
    assert b.j("sync")["flushed"]["committed"] is True
    sa = a.session("alice", "dev")["session_id"]
    mine = a.j("send", "--session", sa, "--channel", "dev", "--text", "from a")
    r = a.j("sync")  # the push is rejected (b pushed first): fetch, then rebase a's batched commit
    assert r["flushed"]["committed"] is True and r["pushed"] is True and r["integrated"] == "rebase"
    assert int(a.git("rev-list", "--merges", "--count", "HEAD").strip()) == 0
    assert set(mine["paths"]) <= in_head(a) and in_head(b) <= in_head(a)
