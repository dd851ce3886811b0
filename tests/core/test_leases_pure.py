"""The pure parts of durable delivery: lease fold, reminder schedule, exec environment."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core import deadlines, delivery, leases
from handoff.core.model import format_ts, parse_ts

T0 = parse_ts("2030-01-01T00:00:00Z")
MIN = 60_000


def _state(target_agent=None):
    sessions = {f"sess_{p}": {"session_id": f"sess_{p}", "peer_id": f"{a}.sess_{p}", "agent": a}
                for p, a in (("a", "alice"), ("b1", "bob"), ("b2", "bob"), ("c", "carol"))}
    work = {"work_id": "work_w", "opened_by_peer_id": "alice.sess_a",
            "target_peer_id": target_agent or "bob.sess_b1", "target_agent": target_agent, "state": "working",
            "terminal_at": None, "deadline_at": format_ts(T0 + 30 * MIN), "opener_id": "msg_open",
            "last_activity_at": format_ts(T0), "checkpoint": None}
    return {"sessions": sessions, "work": {"work_w": work}, "leases": [],
            "messages": []}


def _ev(i, kind, peer, at_min, lease_min=10):
    body = {} if kind == "release" else {"lease_until": format_ts(T0 + (at_min + lease_min) * MIN)}
    return {"id": f"evt_{i:026d}", "kind": kind, "from": peer, "ts": format_ts(T0 + at_min * MIN),
            "work_id": "work_w", "body": body}


def test_fold_judges_each_event_at_its_own_time():
    state = _state(target_agent="bob")
    w = state["work"]["work_w"]
    evs = [_ev(1, "claim", "bob.sess_b1", 0), _ev(2, "claim", "bob.sess_b2", 5), _ev(3, "heartbeat", "bob.sess_b1", 8),
           _ev(4, "heartbeat", "bob.sess_b1", 30), _ev(5, "claim", "bob.sess_b2", 31), _ev(6, "release", "bob.sess_b1", 32),
           _ev(7, "claim", "carol.sess_c", 33)]
    rec = leases.fold(state, w, evs)
    state["leases"] = evs
    assert rec["holder"] == "bob.sess_b2" and rec["claim_id"] == evs[4]["id"]
    assert [(c["event_id"][-1], c["reason_code"]) for c in rec["conflicts"]] == [
        ("2", "lease_held"), ("4", "lease_expired"), ("6", "no_lease"), ("7", "not_participant")]
    assert leases.view(state, w, T0 + 35 * MIN)["holder"] == "bob.sess_b2"
    late = leases.view(state, w, T0 + 60 * MIN)
    assert late["holder"] is None and late["expired"] and late["last_holder"] == "bob.sess_b2"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["claim", "heartbeat", "release"]),
                          st.sampled_from(["bob.sess_b1", "bob.sess_b2", "alice.sess_a"]),
                          st.integers(0, 60), st.integers(1, 20)), max_size=12))
def test_fold_has_one_holder_who_made_the_winning_claim(moves):
    state = _state(target_agent="bob")
    evs = [_ev(i, k, p, t, d) for i, (k, p, t, d) in enumerate(sorted(moves, key=lambda m: m[2]))]
    rec = leases.fold(state, state["work"]["work_w"], evs)
    assert len(rec["history"]) + len(rec["conflicts"]) == len(evs)
    if rec["holder"] is not None:
        claim = next(e for e in evs if e["id"] == rec["claim_id"])
        assert claim["kind"] == "claim" and claim["from"] == rec["holder"]
    assert leases.fold(state, state["work"]["work_w"], evs) == rec  # a function of the events only


def test_reminder_schedule():
    state = _state()
    b1 = {"session_id": "sess_b1", "peer_id": "bob.sess_b1", "agent": "bob"}
    a = {"session_id": "sess_a", "peer_id": "alice.sess_a", "agent": "alice"}
    assert deadlines.reminders_due(state, b1, T0, 10 * MIN, 3) == []
    assert deadlines.next_reminder_ms(state, [b1], T0, 10 * MIN, 3) == T0 + 30 * MIN
    assert [n for _, n in deadlines.reminders_due(state, b1, T0 + 30 * MIN, 10 * MIN, 3)] == [0]
    assert [n for _, n in deadlines.reminders_due(state, b1, T0 + 55 * MIN, 10 * MIN, 3)] == [2]
    assert [n for _, n in deadlines.reminders_due(state, b1, T0 + 500 * MIN, 10 * MIN, 3)] == [2]  # bounded
    assert deadlines.next_reminder_ms(state, [b1], T0 + 41 * MIN, 10 * MIN, 3) == T0 + 50 * MIN
    assert deadlines.next_reminder_ms(state, [b1], T0 + 51 * MIN, 10 * MIN, 3) is None
    assert deadlines.reminders_due(state, a, T0 + 55 * MIN, 10 * MIN, 3) == []  # the initiator is not reminded
    assert deadlines.reminders_due(state, b1, T0 + 55 * MIN, 0, 3) == []


def test_exec_env_carries_ids_never_text():
    note = {"notification": "message", "key": "msg_x", "for_session": "sess_b1", "for_peer": "bob.sess_b1",
            "id": "msg_x", "kind": "say", "from": "alice.sess_a", "channel": "general", "thread_id": "thread_t",
            "work_id": None, "body": {"text": "$(rm -rf /)"}, "work": {"work_id": "work_w", "state": "working"}}
    env = delivery.exec_env(note, "/repo")
    assert env["HANDOFF_WORK_ID"] == "work_w" and env["HANDOFF_WORK_STATE"] == "working"
    assert not any("rm -rf" in v for v in env.values())
    assert [delivery.retry_delay_s(n) for n in (1, 2, 3, 7, 50)] == [1, 2, 4, 60, 60]
