"""The seeds' own command flows, with `agh network` written `handoff`."""
from __future__ import annotations


def test_seed000_handoff_between_agents(repo):
    assert repo.j("status")["sessions"] == 0
    assert repo.j("channels")["channels"] == []
    coord = repo.j("session", "new", "--workspace", "test", "--agent", "coordinator", "--channel", "release",
                   "--name", "release-coordinator")
    recv = repo.j("session", "new", "--workspace", "test", "--agent", "reviewer", "--channel", "release",
                  "--name", "release-reviewer", "--id", "sess_receiver")
    assert recv["peer_id"] == "release-reviewer.sess_receiver"
    assert coord["peer_id"].startswith("release-coordinator.sess_")
    peers = repo.j("peers", "release")["peers"]
    assert {p["peer_id"] for p in peers} == {coord["peer_id"], recv["peer_id"]}

    sent = repo.j("send", "--session", coord["session_id"], "--channel", "release", "--kind", "request",
                  "--interaction-id", "rel-2026-05-02-docs", "--body",
                  '{"task":"Check release docs for drift","evidence_required":["commands","file paths","remaining risk"]}')
    assert sent["kind"] == "say" and sent["body"]["intent"] == "request"
    assert sent["trace_id"] == "rel-2026-05-02-docs"
    assert sent["committed"] is True

    inbox = repo.j("inbox", "--session", "sess_receiver")
    assert [e["id"] for e in inbox["entries"]] == [sent["id"]]
    assert inbox["entries"][0]["body"]["task"] == "Check release docs for drift"
    # reading never changes anything
    assert repo.j("inbox", "--session", "sess_receiver") == inbox
    # the sender does not see its own message
    assert repo.j("inbox", "--session", coord["session_id"])["entries"] == []

    status = repo.j("status")
    assert status["sessions"] == 2 and status["messages_by_kind"] == {"say": 1}
    assert repo.j("session", "status", "sess_receiver")["inbox_count"] == 1
    hist = repo.j("session", "history", "sess_receiver")
    assert [m["direction"] for m in hist["messages"]] == []  # a broadcast is not addressed to it
    events = repo.j("session", "events", coord["session_id"], "--last", "50")["events"]
    assert [e["kind"] for e in events] == ["session-open", "say"]


def test_seed003_public_threads(repo):
    a = repo.session("planner", "builders", "sess_planner")
    b = repo.session("patch-worker", "builders", "sess_19")
    repo.ok("send", "--session", a["session_id"], "--channel", "builders", "--surface", "thread", "--thread",
            "thread_release_check_20260416", "--kind", "say", "--body",
            '{"text":"Migration smoke test ready for review.","intent":"notice"}')
    opened = repo.j("send", "--session", a["session_id"], "--channel", "builders", "--surface", "thread",
                    "--thread", "thread_release_check_20260416", "--kind", "say", "--to", b["peer_id"],
                    "--work", "work_migration_check_20260416",
                    "--body", '{"text":"Run migration smoke test","intent":"request"}')
    assert opened["work_id"] == "work_migration_check_20260416"
    threads = repo.j("threads", "list", "--channel", "builders")["threads"]
    assert len(threads) == 1
    t = threads[0]
    assert t["thread_id"] == "thread_release_check_20260416"
    assert t["message_count"] == 2 and t["participant_count"] == 1 and t["open_work_count"] == 1
    assert t["last_message_preview"] == "Run migration smoke test"
    shown = repo.j("threads", "show", "--channel", "builders", "--thread", "thread_release_check_20260416")
    assert shown == t
    msgs = repo.ok("threads", "messages", "--channel", "builders", "--thread", "thread_release_check_20260416",
                   "-o", "jsonl").lines
    assert [m["body"]["text"] for m in msgs] == ["Migration smoke test ready for review.", "Run migration smoke test"]
    assert repo.j("inbox", "--session", b["session_id"])["count"] == 2
