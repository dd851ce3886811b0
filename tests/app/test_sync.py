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
