"""The JSON shapes (views.payloads) and who sees what (core.queries), from hand-made event logs.

Pure: state is the real reducer over events stamped by ``tests.support.pure.Log``; no repository.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core import queries, session_ops, work_ops
from handoff.views import payloads
from tests.support.pure import Log


@pytest.fixture
def log() -> Log:
    log = Log()
    for agent in ("alpha", "beta", "gamma"):
        log.open(agent, "dev")
    return log


def inbox(log: Log, sid: str, acked: set[str] = frozenset(), include_all: bool = False, now_ms=None) -> list[dict]:
    state = log.state()
    return queries.inbox(state, session_ops.session_for(state, sid, write=False), set(acked),
                         log.now if now_ms is None else now_ms, include_all=include_all)


def ids(entries: list[dict]) -> list[str]:
    return [e["id"] for e in entries]


# ---------------------------------------------------------------- inbox rules


def test_addressed_messages_reach_the_peer_the_session_and_the_agent(log):
    to_peer = log.send("sess_alpha", thread="thread_aaa", to="beta.sess_beta")
    to_agent = log.send("sess_alpha", thread="thread_aaa", to="beta")
    to_other = log.send("sess_alpha", thread="thread_aaa", to="gamma.sess_gamma")
    got = ids(inbox(log, "sess_beta"))
    assert to_peer["id"] in got and to_agent["id"] in got and to_other["id"] not in got
    assert queries.addressed_to(to_agent, log.session("sess_beta"))
    assert not queries.addressed_to(to_other, log.session("sess_beta"))


def test_broadcasts_reach_joined_channels_from_the_join_on(log):
    before = log.send("sess_alpha", thread="thread_aaa", text="before delta joined")
    log.open("delta", "dev")
    after = log.send("sess_alpha", thread="thread_aaa", text="after")
    elsewhere = log.send("sess_alpha", channel="ops", thread="thread_aaa", text="another channel")
    got = ids(inbox(log, "sess_delta"))
    assert got == [after["id"]]
    assert before["id"] in ids(inbox(log, "sess_beta")) and elsewhere["id"] not in ids(inbox(log, "sess_beta"))


def test_own_messages_never_wait_for_their_sender(log):
    mine = log.send("sess_alpha", thread="thread_aaa", to="alpha")
    assert mine["id"] not in ids(inbox(log, "sess_alpha", include_all=True))


def test_acked_messages_leave_unless_all_is_asked(log):
    m = log.send("sess_alpha", thread="thread_aaa", to="beta")
    assert ids(inbox(log, "sess_beta", acked={m["id"]})) == []
    [entry] = inbox(log, "sess_beta", acked={m["id"]}, include_all=True)
    assert (entry["id"], entry["acked"], entry["answered"], entry["expired"]) == (m["id"], True, False, False)


def test_expired_messages_leave_unless_all_is_asked(log):
    m = log.send("sess_alpha", thread="thread_aaa", to="beta", expires_at="1m")
    assert ids(inbox(log, "sess_beta")) == [m["id"]]
    later = log.now + 120_000
    assert inbox(log, "sess_beta", now_ms=later) == []
    [entry] = inbox(log, "sess_beta", now_ms=later, include_all=True)
    assert entry["expired"] is True


def test_answered_messages_leave(log):
    question = log.send("sess_alpha", thread="thread_aaa", to="beta", text="which branch?")
    assert ids(inbox(log, "sess_beta")) == [question["id"]]
    log.send("sess_beta", thread="thread_aaa", to="alpha.sess_alpha", reply_to=question["id"], text="main")
    assert inbox(log, "sess_beta") == []
    [entry] = inbox(log, "sess_beta", include_all=True)
    assert entry["answered"] is True


def test_a_request_leaves_the_targets_inbox_once_answered_on_its_work(log):
    req = log.request("sess_alpha", "beta")
    [entry] = inbox(log, "sess_beta")
    assert entry["id"] == req["id"] and entry["work"]["work_id"] == req["work_id"]
    assert set(entry["work"]) == {"work_id", "state", "opened_by_peer_id", "target_peer_id", "last_activity_at",
                                  "checkpoint", "overdue", "status"}
    assert (entry["work"]["status"], entry["news"], entry["asks"], entry["folded_into"]) == ("pending", False, None, None)
    log.verb("accept", "sess_beta", req["work_id"])
    assert inbox(log, "sess_beta") == []  # its own later move on the work answers it
    log.verb("trace", "sess_beta", req["work_id"], "completed")
    assert [e["kind"] for e in inbox(log, "sess_alpha")] == ["receipt", "trace", "trace"]


def test_a_request_withdrawn_before_any_answer_needs_nothing_from_its_target(log):
    req = log.request("sess_alpha", "beta")
    log.verb("cancel", "sess_alpha", req["work_id"])
    assert inbox(log, "sess_beta") == []
    entries = inbox(log, "sess_beta", include_all=True)  # the request and its withdrawal
    assert [e["kind"] for e in entries] == ["say", "receipt"] and all(e["answered"] for e in entries)


def test_refused_messages_never_reach_an_inbox(log):
    req = log.request("sess_alpha", "beta")
    bad = dict(work_ops.accept(log.state(), log.session("sess_beta"), req["work_id"])[0],
               **{"from": "gamma.sess_gamma", "session_id": "sess_gamma"})  # gamma is not the target
    [written] = log.write([bad])
    assert log.state()["work"][req["work_id"]]["state"] == "submitted"
    assert written["id"] not in ids(inbox(log, "sess_alpha", include_all=True))


def test_inbox_is_in_event_order_with_the_message_fields(log):
    a = log.send("sess_alpha", thread="thread_aaa", to="beta")
    b = log.send("sess_gamma", thread="thread_bbb", to="beta")
    got = inbox(log, "sess_beta")
    assert ids(got) == [a["id"], b["id"]]
    assert set(queries.MESSAGE_FIELDS) <= set(got[0]) and {"answered", "acked", "expired"} <= set(got[0])


# ---------------------------------------------------------------- payload shapes


def test_work_payload_shape_and_waiting_on(log):
    req = log.request("sess_alpha", "beta", deadline="1h")
    w = log.state()["work"][req["work_id"]]
    p = payloads.work_payload(w, log.now)
    assert list(p)[:len(payloads.WORK_FIELDS)] == list(payloads.WORK_FIELDS)
    assert (p["state"], p["terminal"], p["waiting_on"], p["overdue"]) == ("submitted", False, "beta", False)
    assert payloads.work_payload(w, log.now + 2 * 3_600_000)["overdue"] is True
    assert "history" not in payloads.work_payload(w, history=False)
    log.verb("accept", "sess_beta", req["work_id"])
    log.verb("trace", "sess_beta", req["work_id"], "needs_input", message="which one?")
    w = log.state()["work"][req["work_id"]]
    assert payloads.work_payload(w)["waiting_on"] == "alpha.sess_alpha"
    log.verb("trace", "sess_beta", req["work_id"], "completed", result={"ok": True})
    p = payloads.work_payload(log.state()["work"][req["work_id"]], log.now + 10 * 3_600_000)
    assert (p["terminal"], p["waiting_on"], p["overdue"], p["result"]) == (True, None, False, {"ok": True})


@pytest.mark.parametrize("moves, status", [
    ([], "pending"),
    ([("accept", "sess_beta", {})], "accepted"),
    ([("reject", "sess_beta", {"reason": "busy"})], "rejected"),
    ([("cancel", "sess_alpha", {})], "canceled"),
    ([("accept", "sess_beta", {}), ("trace", "sess_beta", {"new_state": "failed"})], "accepted"),
])
def test_handoff_status_is_the_first_answer(log, moves, status):
    req = log.request("sess_alpha", "beta", description="rotate the keys")
    for verb, sid, kw in moves:
        if verb == "trace":
            log.verb("trace", sid, req["work_id"], kw["new_state"])
        else:
            log.verb(verb, sid, req["work_id"], **kw)
    view = payloads.handoff_view(log.state()["work"][req["work_id"]])
    assert view["status"] == status and view["status"] in payloads.HANDOFF_STATUSES
    assert (view["handoff_id"], view["from"], view["to"], view["description"]) == \
        (req["work_id"], "alpha.sess_alpha", "beta", "rotate the keys")


def test_session_view_and_peers(log):
    s = payloads.session_view(log.state()["sessions"]["sess_alpha"])
    assert list(s) == ["session_id", "peer_id", "agent", "name", "channels", "workspace", "state", "opened_at",
                       "closed_at", "last_activity_at"]
    log.write(session_ops.session_close(log.state(), log.session("sess_gamma")))
    peers = payloads.peers(log.state(), "dev", log.now)
    assert [(p["peer_id"], p["presence"]) for p in peers] == [
        ("alpha.sess_alpha", "active"), ("beta.sess_beta", "active"), ("gamma.sess_gamma", "closed")]


def test_threads_channels_and_status(log):
    log.send("sess_alpha", thread="thread_aaa", text="one")
    log.send("sess_beta", thread="thread_bbb", text="two")
    log.send("sess_alpha", surface="direct", to="beta.sess_beta", text="psst")
    log.request("sess_alpha", "beta")
    state = log.state()
    threads = payloads.threads_in(state, "dev")
    assert [list(t) for t in threads] == [list(payloads.THREAD_FIELDS)] * len(threads)
    assert [t["last_activity_at"] for t in threads] == sorted((t["last_activity_at"] for t in threads), reverse=True)
    msgs = payloads.container_messages(state, channel="dev", thread_id="thread_aaa")
    assert [m["body"]["text"] for m in msgs] == ["one"]
    [ch] = payloads.channels(state)
    assert (ch["channel"], ch["message_count"], ch["thread_count"], ch["direct_count"], ch["open_work_count"]) == \
        ("dev", 4, 3, 1, 1)
    assert ch["peers"] == sorted(ch["peers"]) and ch["peer_count"] == 3
    assert payloads.status(state) | {"events": 0} == {
        "sessions": 3, "active_sessions": 3, "channels": 1, "threads": 3, "direct_rooms": 1, "work_units": 1,
        "open_work": 1, "work_by_state": {"submitted": 1}, "awaiting_approval": 0, "work_transitions": state["counters"]["transitions"],
        "messages": 4, "messages_by_kind": {"say": 4}, "events": 0, "diagnostics": 0}
    assert payloads.status(state)["events"] == 7


# ---------------------------------------------------------------- order independence


def _history() -> Log:
    log = Log()
    for agent in ("alpha", "beta", "gamma"):
        log.open(agent, "dev")
    q = log.send("sess_alpha", thread="thread_aaa", to="beta", text="question")
    log.send("sess_beta", thread="thread_aaa", to="alpha.sess_alpha", reply_to=q["id"], text="answer")
    log.send("sess_gamma", surface="direct", to="beta.sess_beta", text="psst")
    one = log.request("sess_alpha", "beta", deadline="1h")
    two = log.request("sess_gamma", "alpha.sess_alpha")
    log.verb("accept", "sess_beta", one["work_id"])
    log.verb("trace", "sess_beta", one["work_id"], "needs_input", message="which?")
    log.verb("reply", "sess_alpha", one["work_id"], text="the first")
    log.verb("reject", "sess_alpha", two["work_id"], reason="busy")
    log.send("sess_alpha", thread="thread_aaa", text="broadcast", expires_at="30m")
    log.write(session_ops.session_close(log.state(), log.session("sess_gamma")))
    return log


HISTORY = _history()


def views(log: Log, events: list[dict]) -> str:
    state = log.state(events)
    now = log.now + 3_600_000 // 2
    out = {
        "status": payloads.status(state),
        "channels": payloads.channels(state),
        "threads": payloads.threads_in(state, "dev"),
        "peers": payloads.peers(state, "dev", now),
        "work": [payloads.work_payload(w, now) for _, w in sorted(state["work"].items())],
        "handoffs": [payloads.handoff_view(w, now) for _, w in sorted(state["work"].items())],
        "inbox": {sid: queries.inbox(state, s, set(), now, include_all=all_)
                  for sid, s in sorted(state["sessions"].items()) for all_ in (False, True)},
    }
    return json.dumps(out, sort_keys=True)


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_payloads_do_not_depend_on_the_order_events_are_read(rnd):
    expected = views(HISTORY, HISTORY.events)
    shuffled = list(HISTORY.events)
    rnd.shuffle(shuffled)
    assert views(HISTORY, shuffled) == expected


def test_the_history_exercises_every_rule():
    state = HISTORY.state()
    assert state["diagnostics"] == []
    assert sorted(w["state"] for w in state["work"].values()) == ["failed", "working"]  # (the reply resumed it)
