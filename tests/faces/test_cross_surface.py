"""Seed 003's cross-surface handoff, and the audit timeline that follows a flow across containers."""
from __future__ import annotations

import json

CH = "builders"
THREAD = "thread_release_check_20260416"
TRACE = "trace_release_20260416"
W1 = "work_migration_check_20260416"
W2 = "work_rollback_review_20260416"


def at(hhmmss: str) -> dict:
    return {"HANDOFF_NOW": f"2026-04-16T{hhmmss}Z"}


def test_thread_work_moves_to_a_direct_room_and_summarises_back(repo):
    planner = repo.session("planner", CH, "sess_planner")["peer_id"]
    worker = repo.session("patch-worker", CH, "sess_19")["peer_id"]
    repo.session("observer", CH, "sess_obs")
    root = repo.j("send", "-s", "sess_planner", "-c", CH, "--surface", "thread", "--thread", THREAD,
                  "--trace-id", TRACE, "--body", '{"text":"Migration smoke test ready for review.","intent":"notice"}',
                  env=at("09:00:00"))
    opened = repo.j("send", "-s", "sess_planner", "-c", CH, "--surface", "thread", "--thread", THREAD,
                    "--to", worker, "--work", W1, "--trace-id", TRACE,
                    "--body", '{"text":"Run migration smoke test","intent":"request"}', env=at("09:01:00"))
    accepted = repo.j("accept", W1, "-s", "sess_19", env=at("09:02:00"))
    assert all(e["trace_id"] == TRACE for e in accepted["events"])  # moves on the work keep its trace

    # restricted follow-up: a NEW work id in the direct room, linked back to the thread's work
    refused = repo.h("send", "-s", "sess_19", "-c", CH, "--surface", "direct", "--to", planner, "--work", W1,
                     "-m", "continue here?", "-o", "json")
    assert refused.code == 3 and refused.json["error"]["reason_code"] == "work_container_mismatch"
    direct_open = repo.j("send", "-s", "sess_19", "-c", CH, "--surface", "direct", "--to", planner, "--work", W2,
                         "--reply-to", opened["id"], "--trace-id", TRACE,
                         "--causation-id", accepted["events"][-1]["id"],
                         "--body", '{"text":"Rollback step drops a table; review privately?","intent":"request"}',
                         env=at("09:03:00"))
    room = direct_open["direct_id"]
    assert direct_open["surface"] == "direct" and room.startswith("direct_") and direct_open["thread_id"] is None
    repo.ok("accept", W2, "-s", "sess_planner", env=at("09:04:00"))
    verdict = repo.j("complete", W2, "-s", "sess_planner", "-m", "rollback cleanup needed before merge",
                     env=at("09:05:00"))
    direct_trace = verdict["events"][-1]["id"]

    # summary back into the thread: a fresh say, without the direct room's work id
    summary = repo.j("send", "-s", "sess_19", "-c", CH, "--surface", "thread", "--thread", THREAD,
                     "--reply-to", root["id"], "--trace-id", TRACE, "--causation-id", direct_trace,
                     "--body", '{"text":"Restricted review complete: rollback cleanup needed before merge.",'
                               '"intent":"summary"}', env=at("09:06:00"))
    assert summary["work_id"] is None and summary["direct_id"] is None and summary["thread_id"] == THREAD
    thread_work = repo.j("work", "lookup", "--work", W1)
    assert (thread_work["state"], thread_work["surface"], thread_work["thread_id"]) == ("working", "thread", THREAD)
    repo.ok("complete", W1, "-s", "sess_19", "-m", "smoke test green", env=at("09:07:00"))

    w2 = repo.j("work", "lookup", "--work", W2)
    assert (w2["surface"], w2["direct_id"], w2["thread_id"], w2["state"], w2["trace_id"]) == \
        ("direct", room, None, "completed", TRACE)
    assert (w2["opened_by_peer_id"], w2["target_peer_id"]) == (worker, planner)
    thread_msgs = repo.ok("threads", "messages", "-c", CH, "-t", THREAD, "-o", "jsonl").lines
    assert W2 not in {m["work_id"] for m in thread_msgs}
    assert {m["surface"] for m in thread_msgs} == {"thread"}
    room_msgs = repo.ok("directs", "messages", "-c", CH, "--direct", room, "-o", "jsonl").lines
    assert {m["work_id"] for m in room_msgs} == {W2} and len(room_msgs) == 4
    assert repo.j("directs", "list", "-c", CH, "-s", "sess_obs")["directs"] == []  # not the observer's room
    assert repo.j("threads", "show", "-c", CH, "-t", THREAD)["open_work_count"] == 0

    flow = repo.ok("log", "--trace", TRACE, "-o", "jsonl").lines
    assert [(e["event"], e["surface"], e["work_id"]) for e in flow] == [
        ("network.say", "thread", None),
        ("agent.handoff.requested", "thread", W1),
        ("agent.handoff.accepted", "thread", W1),
        ("work.trace.working", "thread", W1),
        ("agent.handoff.requested", "direct", W2),
        ("agent.handoff.accepted", "direct", W2),
        ("work.trace.working", "direct", W2),
        ("work.trace.completed", "direct", W2),
        ("network.say", "thread", None),
        ("work.trace.completed", "thread", W1),
    ]
    assert flow[4]["reply_to"] == opened["id"] and flow[4]["causation_id"] == accepted["events"][-1]["id"]
    assert flow[8]["causation_id"] == direct_trace and flow[8]["reply_to"] == root["id"]
    assert [e["seq"] for e in flow] == sorted(e["seq"] for e in flow)
    assert all(e["commit"] and len(e["commit"]["sha"]) == 40 for e in flow)
    assert {e["direct_id"] for e in flow if e["surface"] == "direct"} == {room}
    # the thread's own log has no direct-room entry
    assert {e["surface"] for e in repo.j("log", "--thread", THREAD)["entries"]} == {"thread"}


# ------------------------------------------------------------------ the audit log


def _flow(repo):
    for agent, sid, t in (("agent-a", "sess_a", "09:00:00"), ("agent-b", "sess_b", "09:00:01")):
        repo.ok("session", "new", "--agent", agent, "--channel", "backend", "--id", sid, env=at(t))
    h1 = repo.j("request", "-s", "sess_a", "--to", "agent-b", "-c", "backend", "-d", "first", "--work", "work_first",
                env=at("10:00:00"))["handoff_id"]
    repo.ok("reject", h1, "-s", "sess_b", "--reason", "Currently working on migrations", env=at("10:01:00"))
    h2 = repo.j("request", "-s", "sess_a", "--to", "agent-b", "-c", "backend", "-d", "second", "--work", "work_second",
                env=at("10:02:00"))["handoff_id"]
    repo.ok("accept", h2, "-s", "sess_b", env=at("10:03:00"))
    return h1, h2


def test_log_names_events_and_finds_their_commits(repo):
    h1, h2 = _flow(repo)
    log = repo.j("log")
    names = [e["event"] for e in log["entries"]]
    assert names == ["session.opened", "session.opened", "agent.handoff.requested", "agent.handoff.rejected",
                     "agent.handoff.requested", "agent.handoff.accepted", "work.trace.working"]
    assert log["count"] == 7 and [e["seq"] for e in log["entries"]] == list(range(1, 8))
    for e in log["entries"]:
        path = f".handoffs/{e['path']}"
        sha = repo.git("log", "--diff-filter=A", "--format=%H", "--", path).strip()
        assert e["commit"]["sha"] == sha
        assert (e["commit"]["author_name"], e["commit"]["author_email"]) == ("Test Author", "author@example.com")
        assert e["commit"]["date"] == repo.git("show", "-s", "--format=%aI", sha).strip()
    rejected = log["entries"][3]
    assert (rejected["work_id"], rejected["status"], rejected["work_state"], rejected["summary"]) == \
        (h1, "rejected", "failed", "Currently working on migrations")
    # the accept verb wrote two files in one commit
    assert log["entries"][5]["commit"] == log["entries"][6]["commit"]

    lines = repo.ok("log", "--work", h2, "-o", "jsonl").out.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["agent.handoff.requested", "agent.handoff.accepted",
                                                             "work.trace.working"]
    assert [e["event"] for e in repo.j("log", "--session", "sess_b")["entries"]] == \
        ["session.opened", "agent.handoff.rejected", "agent.handoff.accepted", "work.trace.working"]
    assert [e["event"] for e in repo.j("log", "--session", "agent-b.sess_b", "--work", h1)["entries"]] == \
        ["agent.handoff.rejected"]
    human = repo.ok("log", "--work", h1).out
    assert "agent.handoff.rejected" in human and "Test Author" in human


def test_log_uncommitted_files_have_no_commit(repo):
    _flow(repo)
    late = repo.j("request", "-s", "sess_a", "--to", "agent-b", "-c", "backend", "-d", "draft", "--no-commit",
                  env=at("10:30:00"))
    entries = repo.j("log", "--work", late["handoff_id"])["entries"]
    assert len(entries) == 1 and entries[0]["commit"] is None
    assert all(e["commit"] for e in repo.j("log")["entries"] if e["work_id"] != late["handoff_id"])
    assert repo.j("status")["uncommitted_events"] == 1


def test_log_uses_a_constant_number_of_git_calls(repo, monkeypatch):
    from handoff.git import cmd as gitcmd
    calls = []
    real = gitcmd.run

    def counting(cwd, *args, **kw):
        calls.append(args)
        return real(cwd, *args, **kw)

    monkeypatch.setattr(gitcmd, "run", counting)

    def git_calls() -> int:
        calls.clear()
        repo.j("log")
        return len(calls)

    _flow(repo)
    small = git_calls()
    for i in range(8):
        repo.ok("send", "-s", "sess_a", "-c", "backend", "-t", "thread_chatter", "-m", f"note {i}",
                env=at(f"11:00:0{i}"))
    assert git_calls() == small
    assert sum(1 for c in calls if "log" in c) == 1


def test_log_filters_refuse_unknown_targets(repo):
    _flow(repo)
    for args, code in ((["--work", "work_nope"], "work_not_found"), (["--session", "sess_nope"], "session_not_found"),
                       (["--thread", "thread_nope"], "conversation_not_found")):
        r = repo.h("log", *args, "-o", "json")
        assert r.code == 4 and r.json["error"]["reason_code"] == code
    assert repo.j("log", "--trace", "trace_nothing") == {"count": 0, "entries": []}
    assert repo.j("log", "--channel", "elsewhere") == {"count": 0, "entries": []}
    assert repo.j("log", "--channel", "backend")["count"] == 5  # the session events belong to no channel


def test_log_on_a_fresh_workspace_is_empty(repo):
    assert repo.j("log") == {"count": 0, "entries": []}
    assert repo.ok("log").out.strip() == "(no events)"
