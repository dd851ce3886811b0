"""`handoff watch` as a real process: local writes, git pulls, restarts, --exec, checkouts, polling."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import git
from support.watchproc import WatchProc

from handoff.app.workspace import Workspace
from handoff.core import ops
from handoff.store import clock

HEAVY = os.environ.get("HANDOFF_HEAVY") == "1"


def bulk_send(repo_path: Path, session_id: str, to: str, n: int, channel: str = "general", prefix: str = "bulk") -> None:
    """n directed messages, built, stamped and encoded by the real writer's code, then committed with git.

    Only the per-file fsyncs of ``Workspace.write`` are skipped (they are the writer's durability
    cost, not the watcher's subject, and would dominate the test's run time).
    """
    from handoff.core import model
    from handoff.core.yaml import codec
    ws = Workspace(repo_path)
    state = ws.state(refresh=True)
    s = ops.session_for(state, session_id)
    now = clock.now_ms()
    drafts = [ops.send(state, s, workspace_id=ws.workspace_id, now_ms=now, channel=channel, kind="say",
                       body={"text": f"{prefix} {i}"}, surface="thread", thread="thread_bulk", to=to)[0]
              for i in range(n)]
    for ev in ws._stamp(state, drafts):
        path = ws.root / model.event_path(ev)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(codec.dump(ev))
    git(repo_path, "add", ".handoffs")
    git(repo_path, "commit", "-qm", f"{n} events")


def texts(notes: list[dict]) -> list[str]:
    return [n["body"]["text"] for n in notes]


def _alice_and_bob_and_a_second_clone(clones):
    """A clone with sessions alice and bob, pushed; a second clone of the same remote; bob's session."""
    here = clones("here")
    here.ok("init", "--workspace", "w")
    here.session("alice", sid="sess_alice")
    b = here.session("bob", sid="sess_bob")
    here.git("push", "-q", "origin", "main")
    return here, clones("there"), b


def test_local_sends_pull_of_1000_and_restart(clones):
    here = clones("here")
    here.ok("init", "--workspace", "w")
    here.git("push", "-q", "origin", "main")
    there = clones("there")
    a = here.session("alice", sid="sess_alice")
    b = here.session("bob", sid="sess_bob")
    here.git("push", "-q", "origin", "main")
    there.git("pull", "-q", "--ff-only")

    with WatchProc(here.path, "--session", "sess_bob") as w:
        for i in range(20):  # 20 sends by another local process
            here.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"],
                    "--thread", "thread_local", "--body", json.dumps({"text": f"local {i}"}))
        got = w.take(20)
        assert sorted(texts(got)) == sorted(f"local {i}" for i in range(20))
        assert {n["notification"] for n in got} == {"message"}
        assert all(n["for_session"] == "sess_bob" and n["from"] == a["peer_id"] for n in got)

        n_pull = 1000
        bulk_send(there.path, "sess_alice", b["peer_id"], n_pull)
        there.git("push", "-q", "origin", "main")
        here.git("pull", "-q", "--no-rebase", "--no-edit")
        got = w.take(n_pull, timeout=120)
        assert sorted(texts(got)) == sorted(f"bulk {i}" for i in range(n_pull))
        assert w.quiet(1.0) == []
        assert w.stop() == 0

    # while it is down: three more arrive; a restart reports exactly those, nothing repeated
    for i in range(3):
        here.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"],
                "--thread", "thread_local", "--body", json.dumps({"text": f"later {i}"}))
    with WatchProc(here.path, "--session", "sess_bob") as w2:
        got = w2.take(3)
        assert texts(got) == ["later 0", "later 1", "later 2"]
        assert w2.quiet(1.5) == []
    ids = [n["id"] for n in w.seen + w2.seen]
    assert len(ids) == len(set(ids)) == 20 + n_pull + 3


def test_events_brought_by_sync_from_another_branch(clones):
    here, there, b = _alice_and_bob_and_a_second_clone(clones)
    there.git("checkout", "-q", "-b", "feature-x")
    with WatchProc(here.path, "--session", "sess_bob") as w:
        there.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "from x")
        there.git("push", "-q", "origin", "feature-x")
        here.ok("sync", "--no-push")  # fetch only: feature-x is never merged nor checked out here
        got = w.take(1)
        assert texts(got) == ["from x"]
        assert w.quiet(1.0) == []


def test_never_reports_own_other_rooms_or_answered(repo):
    a = repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    c = repo.session("carol", sid="sess_carol")
    # answered before the watcher starts: a request bob already accepted
    repo.ok("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "old",
            "--work", "work_old")
    repo.ok("accept", "work_old", "--session", "sess_bob")
    with WatchProc(repo.path, "--session", "sess_bob") as w:
        repo.ok("send", "--session", "sess_bob", "--channel", "general", "--to", a["peer_id"], "-m", "mine")
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--surface", "direct",
                "--to", c["peer_id"], "-m", "alice->carol private")
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--surface", "direct",
                "--to", b["peer_id"], "-m", "alice->bob private")
        repo.ok("send", "--session", "sess_carol", "--channel", "general", "-m", "broadcast")
        got = w.take(2)
        assert sorted(texts(got)) == ["alice->bob private", "broadcast"]
        assert w.quiet(1.0) == []


def test_exec_gets_hostile_text_on_stdin_and_runs_none_of_it(repo, tmp_path):
    a = repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    out = tmp_path / "hook-out"
    out.mkdir()
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import json, os, sys\n"
        "note = json.load(sys.stdin)\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('HANDOFF_')}\n"
        f"open(os.path.join({str(out)!r}, note['id'] + '.json'), 'w').write(json.dumps({{'note': note, 'env': env, 'argv': sys.argv}}))\n")
    hostile = ["$(touch pwned1)", "`touch pwned2`", "x; touch pwned3", "a && touch pwned4 | cat > pwned5 'q' \"d\""]
    with WatchProc(repo.path, "--session", "sess_bob", "--exec", f"{sys.executable} {hook} --flag") as w:
        for text in hostile:
            repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"],
                    "--work", f"work_h{hostile.index(text)}", "--body", json.dumps({"text": text}))
        got = w.take(len(hostile))
    records = [json.loads(p.read_text()) for p in sorted(out.iterdir())]
    assert sorted(r["note"]["body"]["text"] for r in records) == sorted(hostile)
    for r in records:
        assert r["argv"][1:] == ["--flag"]
        env = r["env"]
        assert env["HANDOFF_MESSAGE_ID"] == r["note"]["id"]
        assert env["HANDOFF_KIND"] == "say" and env["HANDOFF_FROM"] == a["peer_id"]
        assert env["HANDOFF_SESSION"] == "sess_bob" and env["HANDOFF_WORK_ID"].startswith("work_h")
        assert not any("touch" in v for v in env.values())
    assert [n["id"] for n in got] and not list(repo.path.glob("pwned*")) and not list(tmp_path.glob("pwned*"))
    assert not list(out.glob("pwned*")) and not list(Path.cwd().glob("pwned*"))


def test_failing_exec_is_retried_and_not_marked_delivered(repo, tmp_path):
    repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    flag = tmp_path / "fail"
    flag.write_text("1")
    log = tmp_path / "calls.log"
    hook = tmp_path / "hook.py"
    hook.write_text("import os, sys, json\n"
                    f"open({str(log)!r}, 'a').write(os.environ['HANDOFF_ATTEMPT'] + '\\n')\n"
                    f"sys.exit(1 if os.path.exists({str(flag)!r}) else 0)\n")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "hello")
    w = WatchProc(repo.path, "--session", "sess_bob", "--exec", f"{sys.executable} {hook}")
    try:
        import time
        end = time.monotonic() + 60
        while not (log.exists() and len(log.read_text().split()) >= 2) and time.monotonic() < end:
            time.sleep(0.05)
        assert log.read_text().split()[:2] == ["1", "2"]  # the first attempt failed; retried with backoff
        assert w.quiet(0.2) == []
    finally:
        w.stop()
    # not recorded as delivered: a restarted watcher delivers it again, and this time the hook succeeds
    flag.unlink()
    with WatchProc(repo.path, "--session", "sess_bob", "--exec", f"{sys.executable} {hook}") as w2:
        assert texts(w2.take(1)) == ["hello"]
        assert w2.stop() == 0  # SIGTERM: a clean stop records what was delivered
    assert repo.ok("watch", "--session", "sess_bob", "--once", "-o", "jsonl").out == ""


def test_checkout_deleting_handoffs_and_many_sessions_in_one_observer(repo):
    repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    c = repo.session("carol", sid="sess_carol")
    repo.git("checkout", "-q", "-b", "feature")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "on feature")
    with WatchProc(repo.path, "--session", "sess_bob", "--session", "sess_carol") as w:
        assert texts(w.take(1)) == ["on feature"]
        # an orphan branch without .handoffs: the directory disappears, then comes back
        repo.git("checkout", "-q", "--orphan", "bare")
        repo.git("rm", "-rq", "--cached", ".")
        for p in (".handoffs", "README.txt"):
            repo.git("clean", "-fdq", "--", p)
        assert not (repo.path / ".handoffs").exists()
        repo.git("commit", "-q", "--allow-empty", "-m", "empty")
        assert w.quiet(1.5) == [] and w.proc.poll() is None  # its sessions are gone here: it waits
        repo.git("checkout", "-q", "-f", "feature")
        assert (repo.path / ".handoffs").exists()
        assert w.quiet(1.0) == []  # what reappears was already reported
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", c["peer_id"], "-m", "to carol")
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "to bob")
        got = w.take(2)
        assert {(n["for_session"], n["body"]["text"]) for n in got} == {("sess_carol", "to carol"),
                                                                         ("sess_bob", "to bob")}
        # merging main (which lacks them) changes many files at once; nothing new, nothing repeated
        repo.git("checkout", "-q", "main")
        repo.git("merge", "-q", "--no-edit", "feature")
        assert w.quiet(1.0) == []


def test_polling_mode_and_all_sessions(repo):
    repo.session("alice", sid="sess_alice")
    with WatchProc(repo.path, "--all-sessions", "--poll") as w:
        d = repo.session("dave", sid="sess_dave")  # opened after the watcher started
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", d["peer_id"], "-m", "hi dave")
        got = w.take(1)
        assert got[0]["for_session"] == "sess_dave" and got[0]["body"]["text"] == "hi dave"


def test_once_cursor_consumers_and_reset(repo):
    repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    for i in range(3):
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", f"m{i}")
    first = repo.ok("watch", "--session", "sess_bob", "--once", "-o", "jsonl").lines
    assert texts(first) == ["m0", "m1", "m2"]
    assert repo.ok("watch", "--session", "sess_bob", "--once", "-o", "jsonl").out == ""
    other = repo.ok("watch", "--session", "sess_bob", "--once", "--consumer", "audit", "-o", "jsonl").lines
    assert texts(other) == ["m0", "m1", "m2"]  # an independent consumer has its own cursor
    repo.ok("inbox", "--session", "sess_bob", "--ack", first[0]["id"])
    again = repo.ok("watch", "--session", "sess_bob", "--once", "--reset", "-o", "jsonl").lines
    assert texts(again) == ["m1", "m2"]  # acknowledged entries are not delivered
    human = repo.ok("watch", "--session", "sess_bob", "--once", "--reset", "--limit", "1").out
    assert human.endswith(": m1\n") and human.count("\n") == 1  # (not a bare "m2": an id can hold that)
    err = repo.h("watch", "-o", "json")
    assert err.code == 2 and err.json["error"]["reason_code"] == "no_session"
    assert repo.h("watch", "--session", "sess_nobody", "--once", "-o", "json").code == 4
    assert repo.h("watch", "--session", "sess_bob", "--exec", "no-such-program-xyz", "-o", "json").code == 4


@pytest.mark.slow
def test_heavy_pull(clones):
    n = 5000 if HEAVY else 1500
    here, there, b = _alice_and_bob_and_a_second_clone(clones)
    with WatchProc(here.path, "--session", "sess_bob") as w:
        for chunk in range(n // 500):
            bulk_send(there.path, "sess_alice", b["peer_id"], 500, prefix=f"c{chunk}")
        there.git("push", "-q", "origin", "main")
        here.git("pull", "-q", "--no-rebase", "--no-edit")
        got = w.take(n, timeout=300)
        assert len({g["id"] for g in got}) == n
