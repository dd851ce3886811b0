"""`handoff sync` and cross-branch visibility through a real bare remote."""
from __future__ import annotations

import json


def on_branch(clone, name):
    clone.git("checkout", "-q", "-b", name)
    return clone


def comparable(work: dict) -> dict:
    return {k: v for k, v in work.items() if k not in ("overdue", "waiting_on")}


def test_two_feature_branches_exchange_a_handoff_through_the_remote(clones):
    a = on_branch(clones("a"), "feature-a")
    b = on_branch(clones("b"), "feature-b")
    alice = a.session("alice", "dev")
    bob = b.session("bob", "dev")
    assert a.j("sync")["pushed"] is True
    b.ok("sync")
    a.ok("sync")
    # each side sees the other's session without merging or switching branch
    assert {p["agent"] for p in a.j("peers", "dev")["peers"]} == {"alice", "bob"}

    wid = a.j("request", "--session", alice["session_id"], "--to", "bob", "--channel", "dev",
              "-d", "Port the parser", "--context", '{"files_changed":["src/parser.py"]}')["handoff_id"]
    a.ok("sync")
    b.ok("sync")
    inbox = b.j("inbox", "--session", bob["session_id"])
    assert [e["work_id"] for e in inbox["entries"]] == [wid]

    b.ok("accept", wid, "--session", bob["session_id"])
    b.ok("sync")
    a.ok("sync")
    assert a.j("status", wid)["status"] == "accepted"

    b.ok("complete", wid, "--session", bob["session_id"], "--result", '{"pr": 42}')
    synced = b.j("sync")
    assert synced["events_from_other_branches"] >= 2
    a.ok("sync")

    wa = a.j("work", "lookup", "--work", wid)
    wb = b.j("work", "lookup", "--work", wid)
    assert wa["state"] == "completed" and wa["result"] == {"pr": 42}
    assert comparable(wa) == comparable(wb)
    assert a.j("status")["open_work"] == b.j("status")["open_work"]
    # nothing was merged: each branch holds only its own events, and stays checked out
    assert a.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "feature-a"
    a_files = a.git("ls-tree", "-r", "--name-only", "HEAD", "--", ".handoffs/events").split()
    assert all("alice" in f for f in a_files)
    # and each branch verifies on its own, the cross-branch links reported as context
    code = b.h("verify", "--base", "origin/main", "-o", "json")
    assert code.code == 0, code.out
    assert any(f["code"] == "parent_elsewhere" for f in code.json["findings"])


def test_events_on_remote_refs_do_not_double_count(clones):
    a = on_branch(clones("a"), "feature-a")
    s = a.session("alice", "dev")
    a.ok("send", "--session", s["session_id"], "--channel", "dev", "--text", "hello")
    before = a.j("status")
    a.ok("sync")
    a.git("fetch", "-q", "origin")
    after = a.j("status")
    assert after["messages_by_kind"] == before["messages_by_kind"] == {"say": 1}
    assert after["sessions"] == 1


def test_remote_refs_config_can_turn_the_union_off(clones):
    a = on_branch(clones("a"), "feature-a")
    b = on_branch(clones("b"), "feature-b")
    b.session("bob", "dev")
    b.ok("sync")
    a.ok("sync")
    assert a.j("status")["sessions"] == 1
    cfg = a.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("remote_refs:\n- 'refs/remotes/origin/*'", "remote_refs: []"))
    assert a.j("status")["sessions"] == 0


def test_same_branch_from_two_clones_rebases_then_pushes(clones):
    a = clones("a")
    b = clones("b")
    sa = a.session("alice", "dev")
    a.ok("sync")
    sb = b.session("bob", "dev")
    r = b.j("sync")
    assert r["pushed"] is True and r["integrated"] == "rebase"
    files = b.git("ls-tree", "-r", "--name-only", "HEAD", "--", ".handoffs/events")
    assert sa["session_id"] in files and sb["session_id"] in files
    a.ok("sync")
    assert a.git("rev-parse", "HEAD") == b.git("rev-parse", "HEAD")


def test_sync_refuses_to_touch_uncommitted_work(clones):
    a = clones("a")
    b = clones("b")
    a.session("alice", "dev")
    a.ok("sync")
    b.session("bob", "dev")
    (b.path / "README.txt").write_text("my unsaved edit\n")
    head = b.git("rev-parse", "HEAD")
    r = b.h("sync", "-o", "json")
    assert r.code == 1
    assert r.json["error"]["reason_code"] == "sync_blocked"
    assert "commit or stash" in r.json["error"]["hint"]
    assert (b.path / "README.txt").read_text() == "my unsaved edit\n"
    assert b.git("rev-parse", "HEAD") == head


def test_sync_every_repeats(clones):
    a = on_branch(clones("a"), "feature-a")
    a.session("alice", "dev")
    r = a.ok("sync", "--every", "0.01s", "--count", "2", "-o", "jsonl")
    rounds = r.lines
    assert [x["round"] for x in rounds] == [1, 2]
    assert rounds[0]["push"] == "pushed" and rounds[1]["push"] == "up to date"
    assert a.h("sync", "--every", "soon").code == 2


def test_sync_without_remote_is_not_found(repo):
    r = repo.h("sync", "-o", "json")
    assert r.code == 4 and "no git remote" in r.json["error"]["message"]


def test_sync_as_a_real_process(clones):
    a = on_branch(clones("a"), "feature-a")
    a.session("alice", "dev")
    proc = a.proc("sync", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pushed"] is True
    assert "feature-a" in a.git("ls-remote", "--heads", "origin")


def test_a_rejected_push_that_cannot_be_integrated_is_a_sync_conflict(clones):
    a = clones("a")
    b = clones("b")
    (a.path / "README.txt").write_text("a's line\n")
    a.git("commit", "-qam", "a edits the readme")
    a.session("alice", "dev")
    a.ok("sync")
    (b.path / "README.txt").write_text("b's conflicting line\n")
    b.git("commit", "-qam", "b edits the readme")
    head = b.git("rev-parse", "HEAD")
    r = b.h("sync", "-o", "json")
    assert r.code == 1, r.out
    assert r.json["error"]["reason_code"] == "sync_conflict"
    assert "merge of refs/remotes/origin/main failed" in r.json["error"]["message"]
    assert b.git("rev-parse", "HEAD") == head and not b.git("status", "--porcelain", "--untracked-files=no")
    # the rejection left the remote where a put it, and b's fetch brought a's branch
    assert b.git("rev-parse", "origin/main") == a.git("rev-parse", "HEAD")


def test_a_push_the_remote_refuses_is_a_git_failure(clones):
    a = clones("a")
    hook = clones.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n")
    hook.chmod(0o755)
    a.session("alice", "dev")
    r = a.h("sync", "-o", "json")
    assert r.code == 1
    assert r.json["error"]["reason_code"] == "git_failed"
    assert r.json["error"]["message"].startswith("git push")


def test_a_fetch_that_fails_is_a_git_failure(clones):
    a = clones("a")
    a.git("remote", "set-url", "origin", str(clones.remote.parent / "gone.git"))
    r = a.h("sync", "--no-push", "-o", "json")
    assert r.code == 1
    assert r.json["error"]["reason_code"] == "git_failed"
    assert r.json["error"]["message"].startswith("git fetch")
    r = a.h("sync", "-o", "json")
    assert r.code == 1 and r.json["error"]["reason_code"] == "git_failed"


def test_progress_goes_to_stderr_with_the_flag_and_nowhere_without(clones):
    a = on_branch(clones("a"), "feature-a")
    a.session("alice", "dev")
    quiet = a.ok("sync")
    assert quiet.err == "" and quiet.out.startswith("sync origin: feature-a: pushed")
    a.session("alice2", "dev")
    loud = a.ok("sync", "--progress")
    assert "push: writing 100% (" in loud.err and ", done" in loud.err, loud.err
    assert loud.out.startswith("sync origin: feature-a: pushed")
    # -o json keeps stdout one document; the progress still goes to stderr
    a.session("alice3", "dev")
    r = a.ok("sync", "--progress", "-o", "json")
    assert r.json["push"] == "pushed" and "push: writing" in r.err


def test_progress_as_jsonl_lines_before_the_result(clones):
    a = on_branch(clones("a"), "feature-a")
    b = on_branch(clones("b"), "feature-b")
    a.session("alice", "dev")
    lines = a.ok("sync", "--progress", "-o", "jsonl").lines
    progress, result = [x["progress"] for x in lines[:-1]], lines[-1]
    assert result["push"] == "pushed" and all("progress" in x for x in lines[:-1])
    writing = [p for p in progress if p["op"] == "push" and p["stage"] == "writing"]
    assert writing and writing[-1]["done"] is True and writing[-1]["percent"] == 100
    assert set(progress[0]) == {"op", "stage", "current", "total", "percent", "done", "message"}
    # the fetch reports too, when it brings something (b fetches a's branch)
    lines = b.ok("sync", "--no-push", "--progress", "-o", "jsonl").lines
    assert any(x["progress"]["op"] == "fetch" for x in lines[:-1]) and lines[-1]["fetched"] is True
    # --every streams rounds; without --progress, only the rounds (as before)
    rounds = a.ok("sync", "--every", "0.01s", "--count", "2", "-o", "jsonl", "--progress").lines
    assert [x["round"] for x in rounds if "round" in x] == [1, 2]
    assert a.ok("sync", "--every", "0.01s", "--count", "1", "-o", "jsonl").lines[0]["round"] == 1
    assert "--progress" in a.ok("sync", "--help").out


def test_sync_from_inside_a_git_hook_environment_uses_this_repo(clones):
    a = on_branch(clones("a"), "feature-a")
    a.session("alice", "dev")
    # a hook runs with git's variables set; GitPython's processes (which start from os.environ) must not
    # follow stray ones to another repository's objects
    elsewhere = clones("elsewhere")
    env = {"GIT_DIR": str(elsewhere.path / ".git"), "GIT_INDEX_FILE": str(elsewhere.path / ".git" / "index"),
           "GIT_OBJECT_DIRECTORY": str(elsewhere.path / ".git" / "objects")}
    r = a.ok("sync", "-o", "json", env=env)
    assert r.json["pushed"] is True
    assert "feature-a" in a.git("ls-remote", "--heads", "origin")


def test_progress_is_on_by_default_when_stderr_is_a_terminal(clones):
    import os
    import pty
    import subprocess
    import sys

    from conftest import ROOT
    a = on_branch(clones("a"), "feature-a")
    a.session("alice", "dev")
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run([sys.executable, "-m", "handoff", "sync"], cwd=a.path, stdout=subprocess.PIPE,
                              stderr=slave, env=env, timeout=60)
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0 and proc.stdout.decode().startswith("sync origin: feature-a: pushed")
    text = seen.decode()
    assert "\rpush: writing" in text and "\x1b[K" in text, text  # rewritten in place
    assert "push: writing 100% (" in text and text.endswith(", done\x1b[K\r\n")  # the last stage ends its line
