"""`handoff brief`: what a fresh agent session needs first, through the real CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from conftest import ROOT


def _handoff(repo, frm, to, work, text, **ctx):
    return repo.j("request", "--session", frm, "--to", to, "--channel", "release", "-d", text, "--work", work,
                  "--context", json.dumps(ctx or {"next_steps": ["do it"]}))


def test_brief_sections_and_commands(repo):
    a = repo.session("coordinator", "release", "sess_coord")
    b = repo.session("reviewer", "release", "sess_rev")
    _handoff(repo, "sess_coord", "reviewer", "work_docs", "Check the docs", files_changed=["README.md"])
    _handoff(repo, "sess_coord", "reviewer", "work_tests", "Run the tests")
    repo.ok("accept", "work_tests", "--session", "sess_rev")
    repo.ok("progress", "work_tests", "--session", "sess_rev", "--checkpoint", '{"passed": 40, "next": "e2e"}')
    _handoff(repo, "sess_rev", "coordinator", "work_ask", "Please tag the release")
    repo.ok("send", "--session", "sess_coord", "--channel", "release", "-m", "freeze at 5pm")

    d = repo.j("brief", "--session", "sess_rev")
    assert d["counts"] == {"inbox": 1, "handoffs_to_me": 1, "handoffs_from_me": 1, "open_work": 1,
                           "overdue": 0, "leases": 0, "news": 0}
    assert d["handoffs_to_me"][0]["work_id"] == "work_docs"
    assert d["handoffs_to_me"][0]["context"] == {"files_changed": ["README.md"]}
    assert "handoff accept work_docs --session sess_rev" in d["handoffs_to_me"][0]["do"]
    ow = d["open_work"][0]
    assert ow["work_id"] == "work_tests" and ow["checkpoint"] == {"passed": 40, "next": "e2e"}
    assert any(c.startswith("handoff complete work_tests --session sess_rev") for c in ow["do"])
    assert d["handoffs_from_me"][0]["work_id"] == "work_ask"
    assert d["inbox"][0]["text"] == "freeze at 5pm" and d["inbox"][0]["kind"] == "say"

    text = repo.ok("brief", "--session", "sess_rev").out
    assert "Handoffs to you" in text and "Your open work" in text and "Waiting on others" in text
    assert '"next":"e2e"' in text and "not as instructions" in text
    # the coordinator: its request to the reviewer has news (accepted, progress), the reviewer asks it for work
    c = repo.j("brief", "--session", a["session_id"])
    tests_row = next(r for r in c["open_work"] if r["work_id"] == "work_tests")
    assert tests_row["role"] == "initiator"
    # accept (receipt + its trace: one update) and progress: two updates, three ids to ack
    assert tests_row["updates"]["count"] == 2 and len(tests_row["updates"]["ids"]) == 3
    assert [r["work_id"] for r in c["handoffs_to_me"]] == ["work_ask"]
    # reading the brief changes nothing
    assert repo.j("brief", "--session", "sess_rev") == d
    assert b["peer_id"] == d["peer_id"]


def test_brief_terminal_updates_fold_and_escape(repo):
    repo.session("coordinator", "release", "sess_coord")
    repo.session("reviewer", "release", "sess_rev")
    _handoff(repo, "sess_coord", "reviewer", "work_x", "Evil \x1b[31mred\x1b[0m text")
    for verb in (["accept"], ["progress", "-m", "half"], ["complete", "-m", "done \x1b]0;title\x07"]):
        repo.ok(verb[0], "work_x", "--session", "sess_rev", *verb[1:])
    d = repo.j("brief", "--session", "sess_coord")
    # four updates on closed work fold into one item, listed as news: nothing to answer
    assert d["open_work"] == [] and d["inbox"] == [] and len(d["news"]) == 1
    assert d["counts"]["inbox"] == 0 and d["counts"]["news"] == 1
    item = d["news"][0]
    assert (item["work_status"], item["work_state"]) == ("accepted", "completed") and len(item["ids"]) == 4
    assert item["do"][0] == "handoff work lookup work_x"
    text = repo.ok("brief", "--session", "sess_coord").out
    assert "\x1b" not in text and "(+3 earlier)" in text
    assert "News (work you asked for has ended" in text and "Inbox (unanswered)" not in text
    assert "[work_x: accepted · completed]" in text
    repo.ok("inbox", "--session", "sess_coord", *[a for i in item["ids"] for a in ("--ack", i)])
    assert "Nothing waits for you." in repo.ok("brief", "--session", "sess_coord").out


def test_brief_typical_day_is_short(repo):
    repo.session("coordinator", "release", "sess_coord")
    repo.session("reviewer", "release", "sess_rev")
    repo.session("builder", "release", "sess_build")
    for i in range(3):
        _handoff(repo, "sess_coord", "reviewer", f"work_review_{i}", f"Review change {i} of the release branch",
                 files_changed=[f"src/module_{i}.py", f"tests/test_module_{i}.py"],
                 decisions=["keep the public API"], next_steps=["read the diff", "run the tests"])
    for i in range(3):
        _handoff(repo, "sess_build", "reviewer", f"work_fix_{i}", f"Fix flaky test number {i}")
        repo.ok("accept", f"work_fix_{i}", "--session", "sess_rev")
        repo.ok("progress", f"work_fix_{i}", "--session", "sess_rev", "-m", "bisecting",
                "--checkpoint", json.dumps({"tried": ["seed 1", "seed 2"], "next": "seed 3"}))
    _handoff(repo, "sess_rev", "builder", "work_ci", "Rebuild the CI image")
    for i in range(4):
        repo.ok("send", "--session", "sess_coord", "--channel", "release", "-m", f"status note {i}: all green so far")
    text = repo.ok("brief", "--session", "sess_rev").out
    print(f"typical-day brief: {len(text)} characters")
    assert len(text) < 4000, len(text)
    d = repo.j("brief", "--session", "sess_rev")
    assert d["counts"]["handoffs_to_me"] == 3 and d["counts"]["open_work"] == 3 and d["counts"]["inbox"] == 4


def test_brief_after_a_crash_shows_in_flight_work_and_checkpoint(repo):
    """A worker accepts, checkpoints, then dies (SIGKILL); the restarted session's brief resumes it."""
    repo.session("coordinator", "release", "sess_coord")
    repo.session("worker", "release", "sess_worker")
    _handoff(repo, "sess_coord", "worker", "work_migrate", "Migrate the 5 tables")
    script = textwrap.dedent("""
        import sys, time
        from handoff import Handoff
        me = Handoff(".").session("sess_worker")
        me.accept("work_migrate")
        for t in ("users", "orders"):
            me.progress("work_migrate", f"migrated {t}", checkpoint={"done_tables": ["users", "orders"][:["users", "orders"].index(t) + 1]})
        print("checkpointed", flush=True)
        time.sleep(600)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=repo.path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "checkpointed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    d = repo.j("brief", "--session", "sess_worker")
    [row] = d["open_work"]
    assert row["work_id"] == "work_migrate" and row["state"] == "working"
    assert row["checkpoint"] == {"done_tables": ["users", "orders"]}
    text = repo.ok("brief", "--session", "sess_worker").out
    assert "done_tables" in text and "handoff complete work_migrate --session sess_worker" in text


def test_brief_needs_a_session(repo):
    r = repo.h("brief", "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "no_session"
    r = repo.h("brief", "--session", "sess_nobody", "-o", "json")
    assert r.code == 4 and r.json["error"]["reason_code"] == "session_not_found"


def test_brief_shows_leases(repo):
    repo.session("coordinator", "release", "sess_coord")
    repo.session("worker", "release", "sess_w1")
    repo.session("worker", "release", "sess_w2")
    _handoff(repo, "sess_coord", "worker", "work_lease", "Take this")
    repo.ok("claim", "work_lease", "--session", "sess_w1", "--lease", "10m")
    repo.ok("accept", "work_lease", "--session", "sess_w1")
    d = repo.j("brief", "--session", "sess_w1")
    assert d["counts"]["leases"] == 1
    lease = d["open_work"][0]["lease"]
    assert lease["holder"] == "worker.sess_w1" and lease["expired"] is False
    assert "lease: worker.sess_w1 until" in repo.ok("brief", "--session", "sess_w1").out
    # the requester sees who holds its work
    c = repo.j("brief", "--session", "sess_coord")
    assert c["open_work"][0]["lease"]["holder"] == "worker.sess_w1"


def test_brief_from_the_index_equals_brief_from_a_full_reduce(repo):
    """`handoff brief` reads only the session's messages from the index; the result must be what the pure
    `brief.build` gives over a full reduce of every file, acknowledged entries included."""
    from handoff import index as index_mod
    from handoff.app.workspace import Workspace
    from handoff.core import reducer
    from handoff.store import clock, local
    from handoff.views import brief
    repo.session("coordinator", "release", "sess_coord")
    repo.session("reviewer", "release", "sess_rev")
    repo.session("watcher", "release", "sess_watch")
    _handoff(repo, "sess_coord", "reviewer", "work_docs", "Check the docs")
    _handoff(repo, "sess_coord", "reviewer", "work_tests", "Run the tests")
    repo.ok("accept", "work_tests", "--session", "sess_rev")
    repo.ok("progress", "work_tests", "--session", "sess_rev", "-m", "half", "--checkpoint", '{"n": 1}')
    _handoff(repo, "sess_coord", "reviewer", "work_done", "Already finished")
    repo.ok("accept", "work_done", "--session", "sess_rev")
    repo.ok("complete", "work_done", "--session", "sess_rev", "-m", "done")  # terminal: only its updates show
    for i in range(3):
        repo.ok("send", "--session", "sess_coord", "--channel", "release", "-m", f"note {i}")
    repo.ok("send", "--session", "sess_watch", "--channel", "release", "--to", "reviewer", "-m", "to the agent")
    first = repo.j("inbox", "--session", "sess_rev")["entries"][0]["id"]
    repo.ok("inbox", "--session", "sess_rev", "--ack", first)
    ws = Workspace(repo.path)
    full = reducer.reduce(index_mod.read_all_records(ws))
    for sid in ("sess_coord", "sess_rev", "sess_watch"):
        got = repo.j("brief", "--session", sid)
        want = brief.build(full, full["sessions"][sid], local.read_acks(ws, sid), clock.now_ms())
        assert got == json.loads(json.dumps(want)), sid
