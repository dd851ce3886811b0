"""``handoff metrics`` on a known history with pinned clocks, and the ``status`` / summary counters."""
from __future__ import annotations

import json

import pytest
from conftest import make_repo
from support.lifecycle import isolated_env


def at(hhmmss: str) -> dict:
    return {"HANDOFF_NOW": f"2026-05-02T{hhmmss}Z"}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """alice -> bob: 5 handoffs, carol -> alice: 2, bob -> carol: 1 (in a direct room, channel ops).

    Built once: the tests that use it only read.
    """
    with isolated_env(tmp_path_factory):
        return _build_history(make_repo(tmp_path_factory.mktemp("history") / "repo"))


def _build_history(repo):
    for i, (agent, sid) in enumerate((("alice", "sess_alice"), ("bob", "sess_bob"), ("bob", "sess_bob2"),
                                      ("carol", "sess_carol"))):
        repo.ok("session", "new", "--agent", agent, "--channel", "backend", "--channel", "ops", "--id", sid,
                env=at(f"09:00:0{i}"))

    def req(sid, to, work, t, channel="backend"):
        repo.ok("request", "-s", sid, "--to", to, "-c", channel, "-d", f"please do {work}", "--work", work, env=at(t))

    def do(t, *args):
        repo.ok(*args, env=at(t))

    req("sess_alice", "bob", "work_auth1", "10:00:00")                    # to the agent: bob2 answers
    req("sess_alice", "bob.sess_bob", "work_auth2", "10:02:00")           # to a peer
    do("10:01:30", "accept", "work_auth1", "-s", "sess_bob2")             # 90 s
    do("10:02:45", "accept", "work_auth2", "-s", "sess_bob")              # 45 s
    req("sess_alice", "bob", "work_auth3", "10:03:00")
    do("10:04:00", "reject", "work_auth3", "-s", "sess_bob", "--reason", "busy")  # terminal after 60 s
    do("10:05:00", "fail", "work_auth2", "-s", "sess_bob", "-m", "cannot")        # terminal after 180 s
    req("sess_alice", "bob", "work_auth4", "10:06:00")
    do("10:06:15", "accept", "work_auth4", "-s", "sess_bob")              # 15 s, stays working
    req("sess_alice", "bob", "work_auth5", "10:06:30")                    # stays pending
    req("sess_carol", "alice", "work_cache1", "10:07:00")
    req("sess_carol", "alice", "work_cache2", "10:08:00")
    do("10:09:00", "cancel", "work_cache2", "-s", "sess_carol")           # withdrawn after 60 s
    repo.ok("send", "-s", "sess_bob", "-c", "ops", "--surface", "direct", "--to", "carol.sess_carol",
            "--work", "work_ops7", "-m", "rotate the keys", env=at("10:10:00"))
    do("10:10:20", "progress", "work_ops7", "-s", "sess_carol")           # implicit acceptance, 20 s
    do("10:11:00", "complete", "work_auth1", "-s", "sess_bob2")           # terminal after 660 s
    do("10:12:00", "complete", "work_ops7", "-s", "sess_carol")           # terminal after 120 s
    do("10:17:00", "accept", "work_cache1", "-s", "sess_alice")           # 600 s, stays working
    return repo


def test_metrics_on_a_known_history(history):
    m = history.j("metrics")
    assert m["pairs"] == [
        {"from_agent": "alice", "to_agent": "bob", "volume": 5, "accepted": 3, "rejected": 1, "pending": 1,
         "withdrawn": 0, "open": 2, "completed": 1, "failed": 2, "canceled": 0, "success_rate": 0.75,
         "mean_acceptance_s": 50.0, "median_acceptance_s": 45.0, "completion_rate": 0.5,
         "mean_time_to_terminal_s": 300.0,
         "gated": 0, "median_approval_wait_ms": None},
        {"from_agent": "bob", "to_agent": "carol", "volume": 1, "accepted": 1, "rejected": 0, "pending": 0,
         "withdrawn": 0, "open": 0, "completed": 1, "failed": 0, "canceled": 0, "success_rate": 1.0,
         "mean_acceptance_s": 20.0, "median_acceptance_s": 20.0, "completion_rate": 1.0,
         "mean_time_to_terminal_s": 120.0,
         "gated": 0, "median_approval_wait_ms": None},
        {"from_agent": "carol", "to_agent": "alice", "volume": 2, "accepted": 1, "rejected": 0, "pending": 0,
         "withdrawn": 1, "open": 1, "completed": 0, "failed": 0, "canceled": 1, "success_rate": 1.0,
         "mean_acceptance_s": 600.0, "median_acceptance_s": 600.0, "completion_rate": None,
         "mean_time_to_terminal_s": 60.0,
         "gated": 0, "median_approval_wait_ms": None},
    ]
    assert m["totals"] == {
        "volume": 8, "accepted": 5, "rejected": 1, "pending": 1, "withdrawn": 1, "open": 3, "completed": 2,
        "failed": 2, "canceled": 1, "success_rate": 0.8333, "mean_acceptance_s": 154.0, "median_acceptance_s": 45.0,
        "completion_rate": 0.6667, "mean_time_to_terminal_s": 216.0,
         "gated": 0, "median_approval_wait_ms": None}
    assert m["channels"] == [
        {"channel": "backend", "messages": 19, "messages_by_kind": {"receipt": 6, "say": 7, "trace": 6},
         "messages_refused": 0, "work": 7, "open_work": 3, "threads": 7, "directs": 0},
        {"channel": "ops", "messages": 3, "messages_by_kind": {"say": 1, "trace": 2}, "messages_refused": 0,
         "work": 1, "open_work": 0, "threads": 0, "directs": 1},
    ]
    assert list(m) == ["pairs", "totals", "channels"]


def test_metrics_for_one_channel_and_in_every_format(history):
    ops = history.j("metrics", "--channel", "ops")
    assert [(p["from_agent"], p["to_agent"]) for p in ops["pairs"]] == [("bob", "carol")]
    assert [c["channel"] for c in ops["channels"]] == ["ops"] and ops["totals"]["volume"] == 1
    human = history.ok("metrics").out
    assert "alice -> bob" in human and "75%" in human
    assert json.loads(history.ok("metrics", "-o", "jsonl").out) == history.j("metrics")
    assert "pairs:" in history.ok("metrics", "-o", "yaml").out
    documented = history.ok("metrics", "--help").out
    m = history.j("metrics")
    for key in [*m, *m["pairs"][0], *m["channels"][0]]:  # the help documents the whole JSON shape
        assert f'"{key}"' in documented, key
    logged = history.ok("log", "--help").out
    for key in [*history.j("log")["entries"][0], "sha", "author_name", "author_email", "date"]:
        assert f'"{key}"' in logged, key
    r = history.h("metrics", "--channel", "Not A Channel", "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "invalid_id"


def test_metrics_with_nothing_to_measure(repo):
    m = repo.j("metrics")
    assert m["pairs"] == [] and m["channels"] == []
    assert m["totals"]["volume"] == 0 and m["totals"]["success_rate"] is None
    assert m["totals"]["mean_acceptance_s"] is None and m["totals"]["completion_rate"] is None


def test_handoff_status_and_lists_follow_first_answers(history):
    st = {h["handoff_id"]: h["status"] for h in history.j("list")["handoffs"]}
    assert st == {"work_auth1": "accepted", "work_auth2": "accepted", "work_auth3": "rejected",
                  "work_auth4": "accepted", "work_auth5": "pending", "work_cache1": "accepted",
                  "work_cache2": "canceled"}
    assert [h["handoff_id"] for h in history.j("list", "--status", "pending")["handoffs"]] == ["work_auth5"]
    assert [h["handoff_id"] for h in history.j("list", "--status", "canceled")["handoffs"]] == ["work_cache2"]
    r = history.h("list", "--status", "sideways", "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "invalid_argument"


def test_status_counters(history):
    s = history.j("status")
    assert s["messages"] == 22 and s["messages_by_kind"] == {"receipt": 6, "say": 8, "trace": 8}
    assert s["work_units"] == 8 and s["open_work"] == 3
    assert s["work_by_state"] == {"canceled": 1, "completed": 2, "failed": 2, "submitted": 1, "working": 2}
    # opening counts as a transition, then every change of state (progress on working work does not)
    # auth1 3 (open, working, completed), auth2 3, auth3 2, auth4 2, auth5 1, cache1 2, cache2 2, ops7 3
    assert s["work_transitions"] == 18
    assert s["threads"] == 7 and s["direct_rooms"] == 1 and s["sessions"] == 4 and s["channels"] == 2
    assert s["uncommitted_events"] == 0 and s["diagnostics"] == 0


def test_open_work_count_on_channel_thread_and_direct_summaries(repo):
    a = repo.session("alpha", "dev", "sess_a")["peer_id"]
    b = repo.session("beta", "dev", "sess_b")["peer_id"]
    repo.ok("send", "-s", "sess_a", "-c", "dev", "-t", "thread_one", "--to", b, "--work", "work_t1", "-m", "one")
    repo.ok("send", "-s", "sess_a", "-c", "dev", "-t", "thread_one", "--to", b, "--work", "work_t2", "-m", "two")
    repo.ok("send", "-s", "sess_b", "-c", "dev", "--surface", "direct", "--to", a, "--work", "work_d1", "-m", "dm")
    repo.ok("send", "-s", "sess_b", "-c", "dev", "-t", "thread_two", "-m", "no work here")

    def counts():
        chan = repo.j("channels")["channels"][0]["open_work_count"]
        threads = {t["thread_id"]: t["open_work_count"] for t in repo.j("threads", "list", "-c", "dev")["threads"]}
        rooms = [d["open_work_count"] for d in repo.j("directs", "list", "-c", "dev")["directs"]]
        return chan, threads, rooms, repo.j("status")["open_work"]

    assert counts() == (3, {"thread_one": 2, "thread_two": 0}, [1], 3)
    repo.ok("accept", "work_t1", "-s", "sess_b")
    assert counts() == (3, {"thread_one": 2, "thread_two": 0}, [1], 3)  # working is still open
    repo.ok("complete", "work_t1", "-s", "sess_b")
    repo.ok("cancel", "work_d1", "-s", "sess_b")
    assert counts() == (1, {"thread_one": 1, "thread_two": 0}, [0], 1)
    refused = repo.h("complete", "work_t1", "-s", "sess_b")
    assert refused.code == 3
    assert counts() == (1, {"thread_one": 1, "thread_two": 0}, [0], 1)
    s = repo.j("status")
    assert s["messages_by_kind"] == {"receipt": 2, "say": 4, "trace": 2}
    assert s["work_transitions"] == 3 + 2 + 1  # three openings, t1 working + completed, d1 canceled
