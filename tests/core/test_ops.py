"""The draft builders (session_ops, message_ops, work_ops, arguments, retries), tested without a repo.

State comes from the real reducer over hand-stamped events (``tests.support.pure.Log``); every refusal
is checked by its reason code, and retries by what they return.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core import arguments, ids, message_ops, model, reducer, retries, session_ops, work_ops
from handoff.core.model import MAX_TEXT, format_ts, parse_ts
from handoff.errors import HandoffError
from tests.support.pure import Log


def refused(code: str, fn, *args, **kw) -> HandoffError:
    with pytest.raises(HandoffError) as info:
        fn(*args, **kw)
    assert info.value.reason_code == code, (info.value.reason_code, info.value.message)
    assert info.value.hint or code in ("no_session",), "every refusal says what to do"
    return info.value


@pytest.fixture
def log() -> Log:
    log = Log()
    log.open("alpha", "dev")
    log.open("beta", "dev")
    return log


def send(log: Log, sid: str, **kw) -> list[dict]:
    kw.setdefault("channel", "dev")
    kw.setdefault("kind", "say")
    kw.setdefault("body", {"text": "hi"})
    return message_ops.send(log.state(), log.session(sid), workspace_id=log.workspace_id, now_ms=log.now,
                            fresh=log.fresh(), **kw)


# ------------------------------------------------------------------ sessions


def test_session_for_refusals(log):
    state = log.state()
    refused("no_session", session_ops.session_for, state, None)
    refused("no_session", session_ops.session_for, state, "")
    refused("invalid_id", session_ops.session_for, state, "sess/../x")
    refused("session_not_found", session_ops.session_for, state, "sess_nobody")


def test_session_for_finds_by_id_and_peer_id(log):
    state = log.state()
    by_id = session_ops.session_for(state, "sess_alpha")
    assert by_id["peer_id"] == "alpha.sess_alpha" and by_id["agent"] == "alpha"
    assert session_ops.session_for(state, "alpha.sess_alpha")["session_id"] == "sess_alpha"


def test_closed_sessions_refuse_writes_but_not_reads(log):
    log.write(session_ops.session_close(log.state(), log.session("sess_beta")))
    refused("session_closed", session_ops.session_for, log.state(), "sess_beta")
    assert session_ops.session_for(log.state(), "sess_beta", write=False)["state"] == "closed"


def _open_beta(log: Log, **kw) -> list[dict]:
    return session_ops.session_open(log.state(), agent="beta", channels=["dev"], name=None, session_id="sess_beta",
                                    workspace=None, **kw)


def test_session_new_on_a_closed_id_is_refused_unless_reopened(log):
    assert _open_beta(log)[0]["_replay"]["id"] == log.session("sess_beta")["open_event_id"]  # a retry
    [close] = log.write(session_ops.session_close(log.state(), log.session("sess_beta")))
    err = refused("session_closed", _open_beta, log)
    assert "--reopen" in err.hint and "leave --id out" in err.hint
    [reopen] = log.write(_open_beta(log, reopen=True))
    assert reopen["kind"] == "session-open" and reopen["body"]["reopens"] == close["id"]
    s = log.session("sess_beta")
    assert (s["state"], s["closed_at"], s["reopen_event_id"]) == ("active", None, reopen["id"])
    assert s["open_event_id"] != reopen["id"]  # the session is still its first opener's
    assert _open_beta(log, reopen=True)[0]["_replay"]["id"] == reopen["id"]  # a retry of the reopen
    assert log.state()["diagnostics"] == []


def test_a_reopen_counts_only_while_the_close_it_names_is_the_last(log):
    [c1] = log.write(session_ops.session_close(log.state(), log.session("sess_beta")))
    [r1] = log.write(_open_beta(log, reopen=True))
    stale = dict(r1, id=model.new_event_id("session-open", log.fresh()))  # a second reopen of c1, from a clone
    [c2] = log.write(session_ops.session_close(log.state(), log.session("sess_beta")))
    later = model.parse_ts(c2["ts"]) + 5000
    stale.update(ts=model.format_ts(later), hlc=model.format_hlc(later, 0))
    records = log.records(log.events + [stale])
    for order in (records, records[::-1], records[1:] + records[:1]):  # file order never matters
        s = reducer.reduce(order)["sessions"]["sess_beta"]
        assert (s["state"], s["close_event_id"]) == ("closed", c2["id"]), order
    assert c1["id"] != c2["id"]


def test_a_reopen_by_another_identity_is_not_applied(log):
    [close] = log.write(session_ops.session_close(log.state(), log.session("sess_beta")))
    forged = log.write(session_ops.session_open(log.state(), agent="mallory", channels=["dev"], name=None,
                                                session_id="sess_other", workspace=None))[0]
    forged = dict(forged, session_id="sess_beta", body=dict(forged["body"], reopens=close["id"]))
    state = log.state([ev for ev in log.events if ev["id"] != forged["id"]] + [forged])
    assert state["sessions"]["sess_beta"]["state"] == "closed"
    assert [d["reason_code"] for d in state["diagnostics"]] == ["session_taken"]


def test_own_open_wins_over_the_logs_owner_for_this_clone(log):
    """A clone that opened sess_alpha itself writes as its own peer, even if another open owns the id."""
    own = {"sess_alpha": {"session_id": "sess_alpha", "peer_id": "alpha2.sess_alpha", "agent": "alpha2",
                          "name": None, "open_event_id": "evt_other"}}
    s = session_ops.session_for(log.state(), "sess_alpha", own=own)
    assert (s["peer_id"], s["agent"]) == ("alpha2.sess_alpha", "alpha2")


def test_session_open_builds_one_draft():
    drafts = session_ops.session_open(Log().state(), agent="alpha", channels=["b", "a", "b"], name=None,
                                      session_id="sess_x", workspace=None)
    assert drafts == [{"kind": "session-open", "from": "alpha.sess_x", "session_id": "sess_x",
                       "body": {"agent": "alpha", "channels": ["a", "b"]}}]


def test_session_open_refuses_bad_ids():
    state = Log().state()
    for kw in ({"agent": "Not Valid"}, {"channels": ["no spaces"]}, {"session_id": "bad"}, {"name": "a b"}):
        args = dict(agent="alpha", channels=["dev"], name=None, session_id="sess_x", workspace=None) | kw
        refused("invalid_id", session_ops.session_open, state, **args)


def test_session_open_again_is_a_replay_or_a_conflict(log):
    state = log.state()
    again = session_ops.session_open(state, agent="alpha", channels=["dev"], name=None, session_id="sess_alpha",
                                     workspace=None)
    assert again == [{"_replay": {"kind": "session-open", "id": state["sessions"]["sess_alpha"]["open_event_id"],
                                  "from": "alpha.sess_alpha", "session_id": "sess_alpha"}}]
    refused("id_conflict", session_ops.session_open, state, agent="alpha", channels=["ops"], name=None,
            session_id="sess_alpha", workspace=None)
    refused("id_conflict", session_ops.session_open, state, agent="gamma", channels=["dev"], name=None,
            session_id="sess_alpha", workspace=None)


def test_session_close_owner_rules(log):
    log.open("alpha", "dev", sid="sess_alpha2")
    state = log.state()
    alpha, beta, alpha2 = (log.session(s) for s in ("sess_alpha", "sess_beta", "sess_alpha2"))
    refused("not_session_owner", session_ops.session_close, state, alpha, by=beta)
    assert session_ops.session_close(state, alpha, by=alpha2)[0]["from"] == "alpha.sess_alpha2"  # same agent
    assert session_ops.session_close(state, alpha, by=beta, admins=["beta"])[0]["from"] == "beta.sess_beta"


def test_session_close_twice_returns_the_first_close(log):
    first = log.write(session_ops.session_close(log.state(), log.session("sess_beta")))[0]
    again = session_ops.session_close(log.state(), log.session("sess_beta", write=False))
    assert again == [{"_replay": {"kind": "session-close", "id": first["id"], "from": "beta.sess_beta",
                                  "session_id": "sess_beta"}}]


def test_session_close_given_ids():
    log = Log()
    s = log.open("alpha", "dev")
    ulid = "01" + "a" * 24
    by_msg_id = session_ops.session_close(log.state(), s, f"msg_{ulid}")[0]
    assert by_msg_id["id"] == f"evt_{ulid}"  # a session event's id: the same ULID, evt_ prefix
    by_key = session_ops.session_close(log.state(), s, "close-1")[0]
    assert "id" not in by_key and by_key["ext"] == {"idempotency_key": "close-1"}


# ---------------------------------------------------------------------- send


def test_send_plain_thread_message(log):
    [d] = send(log, "sess_alpha", thread="thread_general")
    assert (d["kind"], d["surface"], d["thread_id"], d["from"], d["to"]) == \
        ("say", "thread", "thread_general", "alpha.sess_alpha", None)
    assert "after" not in d  # no reply, no work: nothing to follow


def test_send_kind_rules(log):
    refused("unsupported_kind", send, log, "sess_alpha", kind="direct")
    refused("unsupported_kind", send, log, "sess_alpha", kind="shout")
    refused("body_too_large", send, log, "sess_alpha", body={"text": "x" * (MAX_TEXT + 1)})
    refused("invalid_id", send, log, "sess_alpha", channel="no spaces")
    refused("invalid_id", send, log, "sess_alpha", reply_to="has space")
    refused("invalid_id", send, log, "sess_alpha", work="job-1")


@pytest.mark.parametrize("alias", ["request", "handoff", "question", "notice", "summary"])
def test_send_kind_aliases_are_says_with_an_intent(log, alias):
    [d] = send(log, "sess_alpha", kind=alias, body={"task": "ship it"})
    assert d["kind"] == "say" and d["body"] == {"task": "ship it", "intent": alias, "text": "ship it"}


def test_send_alias_without_text_gets_the_body_as_text(log):
    [d] = send(log, "sess_alpha", kind="request", body={"n": 1})
    assert d["body"]["text"] == json.dumps({"intent": "request", "n": 1}, sort_keys=True)


def test_send_surface_rules(log):
    refused("invalid_surface", send, log, "sess_alpha", surface="room")
    refused("invalid_surface", send, log, "sess_alpha", thread="thread_aaa", direct="direct_x")
    refused("invalid_surface", send, log, "sess_alpha", surface="direct")  # no --to
    refused("invalid_surface", send, log, "sess_alpha", surface="thread", direct="direct_x")
    refused("invalid_surface", send, log, "sess_alpha", surface="direct", to="beta.sess_beta", thread="thread_aaa")
    refused("invalid_surface", send, log, "sess_alpha", kind="greet", thread="thread_aaa")
    refused("conversation_not_found", send, log, "sess_alpha", surface="direct", to="beta.sess_beta",
            direct="direct_" + "0" * 32)


def test_send_direct_room_is_the_pairs_own(log):
    [d] = send(log, "sess_alpha", surface="direct", to="beta.sess_beta")
    assert d["direct_id"] == ids.direct_id(log.workspace_id, "dev", "alpha.sess_alpha", "beta.sess_beta")
    log.write([d])
    [back] = send(log, "sess_beta", surface="direct", to="alpha.sess_alpha")
    assert back["direct_id"] == d["direct_id"]  # the same two peers always meet in one room


def test_send_new_thread_is_derived_from_the_interaction_or_fresh(log):
    [d] = send(log, "sess_alpha", interaction_id="Release.Check")
    assert d["thread_id"] == "thread_release-check" and d["trace_id"] == "Release.Check"
    [d] = message_ops.send(log.state(), log.session("sess_alpha"), workspace_id=log.workspace_id, now_ms=log.now,
                           channel="dev", kind="say", body={"text": "x"}, fresh="01" + "b" * 24)
    assert d["thread_id"] == "thread_01" + "b" * 24
    with pytest.raises(ValueError):  # the core draws no randomness: a new thread needs one from the caller
        message_ops.send(log.state(), log.session("sess_alpha"), workspace_id=log.workspace_id, now_ms=log.now,
                         channel="dev", kind="say", body={"text": "x"})


def test_send_expiry(log):
    [d] = send(log, "sess_alpha", thread="thread_aaa", expires_at="30m")
    assert parse_ts(d["expires_at"]) == log.now + 30 * 60_000
    refused("expired", send, log, "sess_alpha", thread="thread_aaa", expires_at=format_ts(log.now))
    refused("invalid_argument", send, log, "sess_alpha", thread="thread_aaa", expires_at="soon")


def test_send_reply_follows_its_parent(log):
    first = log.send("sess_alpha", thread="thread_aaa")
    [d] = send(log, "sess_beta", thread="thread_aaa", reply_to=first["id"], causation_id="msg_unknown")
    assert d["after"] == [first["id"]]  # an unknown parent is named but not followed


def test_send_retries(log):
    ulid = "01" + "c" * 24
    [d] = send(log, "sess_alpha", thread="thread_aaa", given_id=f"msg_{ulid}")
    assert d["id"] == f"msg_{ulid}"
    log.write([d])
    [again] = send(log, "sess_alpha", thread="thread_aaa", given_id=f"msg_{ulid}")
    assert again["_replay"]["id"] == f"msg_{ulid}"
    refused("id_conflict", send, log, "sess_alpha", thread="thread_aaa", given_id=f"msg_{ulid}",
            body={"text": "other"})

    [k] = log.write(send(log, "sess_alpha", given_id="key-1"))  # opens a thread named by a fresh ULID
    assert k["ext"] == {"idempotency_key": "key-1"} and k["thread_id"].startswith("thread_01")
    # the retry lands in the thread the first attempt opened (not a new fresh one) and is a replay
    [again] = send(log, "sess_alpha", given_id="key-1")
    assert again["_replay"]["id"] == k["id"]
    refused("invalid_id", send, log, "sess_alpha", thread="thread_aaa", given_id="bad key")


def test_a_key_is_the_senders_own(log):
    [k] = log.write(send(log, "sess_alpha", thread="thread_aaa", given_id="same-key"))
    [other] = send(log, "sess_beta", thread="thread_aaa", given_id="same-key")
    assert "_replay" not in other and other["ext"] == {"idempotency_key": "same-key"}
    assert k["from"] != other["from"]


# ---------------------------------------------------------------- work verbs


def test_request_opens_work(log):
    d = log.request("sess_alpha", "beta", description="ship it", deadline="2h", context={"files_changed": ["a"]})
    assert d["kind"] == "say" and d["to"] == "beta" and d["work_id"].startswith("work_")
    assert d["body"] == {"text": "ship it", "intent": "handoff", "context": {"files_changed": ["a"]},
                         "target_kind": "agent"}
    assert parse_ts(d["deadline_at"]) == log.now - 1000 + 2 * 3_600_000
    w = log.state()["work"][d["work_id"]]
    assert (w["state"], w["target_agent"], w["opener_id"]) == ("submitted", "beta", d["id"])


def test_request_refusals(log):
    refused("invalid_argument", log.request, "sess_alpha", "beta", description="  ")
    refused("invalid_argument", log.request, "sess_alpha", "alpha.sess_alpha")
    refused("invalid_surface", log.request, "sess_alpha", "beta", direct=True)  # a room needs a peer
    refused("invalid_argument", log.request, "sess_alpha", "beta", deadline="later")
    refused("invalid_id", log.request, "sess_alpha", "beta", work="")  # --work '' is refused, not replaced


def test_request_retry_names_the_same_work_unit(log):
    first = log.request("sess_alpha", "beta", given_id="req-1")
    assert first["work_id"] == "work_req-1"
    again = work_ops.request(log.state(), log.session("sess_alpha"), workspace_id=log.workspace_id, now_ms=log.now,
                             to="beta", channel="dev", description="do it", context=None, work=None, deadline=None,
                             thread=None, direct=False, given_id="req-1", fresh=log.fresh())
    assert [d["_replay"]["id"] for d in again] == [first["id"]]
    ulid = "01" + "d" * 24
    assert log.request("sess_alpha", "beta", given_id=f"msg_{ulid}")["work_id"] == f"work_{ulid}"


def test_find_work(log):
    d = log.request("sess_alpha", "beta")
    state = log.state()
    assert work_ops.find_work(state, d["work_id"])["work_id"] == d["work_id"]
    assert work_ops.find_work(state, d["id"])["work_id"] == d["work_id"]  # by the request's message id
    refused("work_not_found", work_ops.find_work, state, "work_nope")
    refused("invalid_id", work_ops.find_work, state, "../etc")
    refused("invalid_id", work_ops.find_work, state, None)


def test_accept_writes_a_receipt_and_a_trace(log):
    w = log.request("sess_alpha", "beta")["work_id"]
    receipt, trace = log.verb("accept", "sess_beta", w, message="on it")
    assert (receipt["kind"], receipt["body"]["status"], receipt["to"]) == ("receipt", "accepted", "alpha.sess_alpha")
    assert (trace["kind"], trace["body"]) == ("trace", {"state": "working", "message": "on it"})
    assert receipt["id"] in trace["after"]  # the second draft follows the first
    w_state = log.state()["work"][w]
    assert (w_state["state"], w_state["target_peer_id"]) == ("working", "beta.sess_beta")


def test_verbs_refuse_what_the_lifecycle_refuses(log):
    log.open("gamma", "dev")
    w = log.request("sess_alpha", "beta")["work_id"]
    refused("not_target", log.verb, "accept", "sess_gamma", w)
    refused("invalid_argument", log.verb, "reject", "sess_beta", w, reason=" ")
    log.verb("accept", "sess_beta", w)
    refused("already_responded", log.verb, "reject", "sess_beta", w, reason="changed my mind")
    refused("not_target", log.verb, "trace", "sess_alpha", w, "completed")
    log.verb("trace", "sess_beta", w, "completed", result={"ok": True})
    refused("work_closed", log.verb, "trace", "sess_beta", w, "working")
    refused("work_closed", log.verb, "reply", "sess_alpha", w, text="thanks")
    assert work_ops.is_terminal(log.state()["work"][w])


def test_reject_and_cancel_drafts(log):
    w = log.request("sess_alpha", "beta")["work_id"]
    [r] = work_ops.reject(log.state(), log.session("sess_beta"), w, reason="busy with migrations", code="busy")
    assert r["body"] == {"for_id": log.state()["work"][w]["opener_id"], "status": "rejected", "reason_code": "busy",
                         "detail": "busy with migrations"}
    [c] = work_ops.cancel(log.state(), log.session("sess_alpha"), w, message="not needed")
    assert (c["kind"], c["body"]["status"], c["body"]["detail"]) == ("receipt", "canceled", "not needed")
    log.verb("accept", "sess_beta", w)
    [t] = work_ops.cancel(log.state(), log.session("sess_beta"), w)  # the target cancels with a trace
    assert (t["kind"], t["body"]["state"]) == ("trace", "canceled")


def test_reply_answers_the_last_message_of_the_other_side(log):
    req = log.request("sess_alpha", "beta")
    w = req["work_id"]
    [d] = log.verb("reply", "sess_beta", w, text="which branch?")
    assert (d["causation_id"], d["reply_to"], d["body"]) == (req["id"], req["id"], {"text": "which branch?",
                                                                                     "intent": "reply"})
    [back] = log.verb("reply", "sess_alpha", w, text="main")
    assert back["causation_id"] == d["id"] and back["to"] == "beta.sess_beta"


def test_verb_retries_return_every_original(log):
    w = log.request("sess_alpha", "beta")["work_id"]
    first = log.verb("accept", "sess_beta", w, given_id="acc-1")
    assert [d["ext"]["idempotency_key"] for d in first] == ["acc-1", "acc-1:2"]
    again = work_ops.accept(log.state(), log.session("sess_beta"), w, given_id="acc-1")
    assert [d["_replay"]["id"] for d in again] == [d["id"] for d in first]


def test_verb_retry_after_a_crash_writes_only_the_missing_draft(log):
    w = log.request("sess_alpha", "beta")["work_id"]
    receipt, _trace = work_ops.accept(log.state(), log.session("sess_beta"), w, given_id="acc-2")
    log.write([receipt])  # the process died before the trace was written
    rest = work_ops.accept(log.state(), log.session("sess_beta"), w, given_id="acc-2")
    assert [(d["kind"], d["ext"]["idempotency_key"]) for d in rest] == [("trace", "acc-2:2")]


def test_verb_key_reused_for_other_content_is_refused(log):
    w = log.request("sess_alpha", "beta")["work_id"]
    log.verb("accept", "sess_beta", w)
    log.verb("trace", "sess_beta", w, "needs_input", message="which one?", given_id="t-1")
    refused("id_conflict", log.verb, "trace", "sess_beta", w, "needs_input", message="other text", given_id="t-1")


# ---------------------------------------------------------------- retries


def test_apply_idempotency():
    d: dict = {}
    assert retries.apply_idempotency(d, None) is None and d == {}
    ulid = "01" + "e" * 24
    retries.apply_idempotency(d, f"msg_{ulid}")
    assert d == {"id": f"msg_{ulid}"}
    d = {"ext": {"x": 1}}
    retries.apply_idempotency(d, "k.1:2")
    assert d == {"ext": {"x": 1, "idempotency_key": "k.1:2"}}
    refused("invalid_id", retries.apply_idempotency, {}, "-starts-with-dash")
    refused("invalid_id", retries.apply_idempotency, {}, "x" * 129)


# ---------------------------------------------------------------- arguments


def test_parse_body():
    assert arguments.parse_body(None) == {}
    assert arguments.parse_body(None, default={"a": 1}) == {"a": 1}
    assert arguments.parse_body('{"text": "hi"}') == {"text": "hi"}
    refused("invalid_body", arguments.parse_body, "[1]")
    refused("invalid_body", arguments.parse_body, "{nope")
    refused("invalid_body", arguments.parse_body, '{"x": NaN}')
    refused("invalid_body", arguments.parse_body, '{"x": Infinity}')
    deep = '{"a": ' * 30 + "1" + "}" * 30
    assert "nested deeper" in refused("invalid_body", arguments.parse_body, deep).message
    refused("body_too_large", arguments.parse_body, '{"t": "' + "x" * arguments.MAX_BODY_BYTES + '"}')


def test_parse_time_forms():
    now = parse_ts("2030-01-01T00:00:00Z")
    assert arguments.parse_time(None, now, "--deadline") is None
    assert arguments.parse_time("90s", now, "--deadline") == "2030-01-01T00:01:30.000Z"
    assert arguments.parse_time("1w", now, "--deadline") == "2030-01-08T00:00:00.000Z"
    assert arguments.parse_time(" 2 h ", now, "--deadline") == "2030-01-01T02:00:00.000Z"
    assert arguments.parse_time("2030-05-02T21:00:00Z", now, "--deadline") == "2030-05-02T21:00:00.000Z"
    assert arguments.parse_time("0", now, "--deadline") == "1970-01-01T00:00:00.000Z"  # a bare number: unix s
    err = refused("invalid_argument", arguments.parse_time, "soon", now, "--deadline")
    assert err.message == "--deadline 'soon' is not a time"
    err = refused("invalid_argument", arguments.parse_time, "99999999d", now, "--expires-at")
    assert "out of range" in err.message


def test_parse_duration_and_lease_and_every():
    from handoff.core import leases
    assert arguments.parse_duration("90") == 90_000 and arguments.parse_duration("10m") == 600_000
    assert refused("invalid_argument", arguments.parse_duration, "1w").message == "duration '1w' is not understood"
    assert refused("invalid_argument", arguments.parse_duration, "99999999999999999d").message == \
        "duration '99999999999999999d' is too long"
    assert leases.parse_lease(None) == leases.DEFAULT_LEASE_MS and leases.parse_lease("2h") == 7_200_000
    refused("invalid_argument", leases.parse_lease, "0s")
    refused("invalid_argument", leases.parse_lease, "8d")
    assert arguments.parse_every("0.01s") == 10.0 and arguments.parse_every("5M") == 300_000
    assert refused("invalid_argument", arguments.parse_every, "-5s").message == "--every must be positive"
    assert refused("invalid_argument", arguments.parse_every, "1d").message == "--every '1d' is not a duration"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["", "s", "m", "h", "d"]), st.sampled_from(["", " "]))
def test_one_duration_grammar_in_milliseconds(n, unit, gap):
    text = f"{n}{gap}{unit}"
    ms = n * arguments.UNIT_MS[unit]
    assert arguments.duration_ms(text) == ms
    assert arguments.parse_duration(text) == ms
    now = parse_ts("2030-01-01T00:00:00Z")
    if unit:  # a bare number is a time (unix seconds), not a duration from now
        assert parse_ts(arguments.parse_time(text, now, "--deadline")) == now + ms
    if unit != "d" and n:
        assert arguments.parse_every(text) == ms


def test_check_ref():
    assert arguments.check_ref(None, "reply-to") is None
    assert arguments.check_ref("msg_1:a-b.c", "reply-to") == "msg_1:a-b.c"
    for bad in ("", "a b", "a/b", "-a", "x" * 161):
        refused("invalid_id", arguments.check_ref, bad, "reply-to")
