"""Every row of the work lifecycle's transition table, legal and illegal, through the real CLI.

AGH Network's table (protocol.md section 1.1.4) with our documented choices (docs/DESIGN.md):
receipts accepted/rejected come from the target, receipt canceled from the initiator,
traces working/needs_input/completed from the target, failed/canceled from either.
"""
from __future__ import annotations

import json

import pytest
from support.lifecycle import (
    CAP,
    CH,
    PA,
    PB,
    PC,
    THREAD,
    A,
    B,
    C,
    W,
    build_templates,
    commit_count,
    copy_repo,
    isolated_env,
    refuse,
    snapshot,
    spec_args,
)

TERMINAL = ("completed", "failed", "canceled")
ACTIVE = ("submitted", "working", "needs_input")


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    with isolated_env(tmp_path_factory):
        return build_templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def at(templates, tmp_path):
    def make(state: str):
        return copy_repo(templates["paths"][state], tmp_path / f"at_{state}")
    make.opener = templates["opener"]
    return make


# ------------------------------------------------------------------ legal rows

LEGAL = [
    # (from state, message, resulting state)
    ("submitted", "trace:working@b", "working"),
    ("submitted", "trace:needs_input@b", "needs_input"),
    ("submitted", "trace:completed@b", "completed"),
    ("submitted", "trace:failed@b", "failed"),
    ("submitted", "trace:canceled@b", "canceled"),
    ("submitted", "trace:failed@a", "failed"),
    ("submitted", "trace:canceled@a", "canceled"),
    ("submitted", "receipt:accepted@b", "submitted"),  # state-neutral (AGH reference implementation)
    ("submitted", "receipt:rejected@b", "failed"),
    ("submitted", "receipt:canceled@a", "canceled"),
    ("submitted", "receipt:duplicate@b", "submitted"),
    ("submitted", "receipt:expired@b", "submitted"),
    ("submitted", "receipt:unsupported@a", "submitted"),
    ("submitted", "say@a", "submitted"),
    ("submitted", "say@b", "submitted"),
    ("submitted", "capability@a", "submitted"),
    ("submitted", "capability@b", "submitted"),
    ("working", "trace:working@b", "working"),  # progress: a self-transition
    ("working", "trace:needs_input@b", "needs_input"),
    ("working", "trace:completed@b", "completed"),
    ("working", "trace:failed@b", "failed"),
    ("working", "trace:canceled@b", "canceled"),
    ("working", "trace:failed@a", "failed"),
    ("working", "trace:canceled@a", "canceled"),
    ("working", "receipt:rejected@b", "failed"),
    ("working", "receipt:canceled@a", "canceled"),
    ("working", "receipt:duplicate@a", "working"),
    ("working", "receipt:expired@b", "working"),
    ("working", "receipt:unsupported@b", "working"),
    ("working", "say@a", "working"),
    ("working", "say@b", "working"),
    ("working", "capability@b", "working"),
    ("needs_input", "say@a", "working"),  # the initiator's answer resumes the work
    ("needs_input", "capability@a", "working"),
    ("needs_input", "say@b", "needs_input"),  # the target speaking does not answer its own question
    ("needs_input", "trace:working@b", "working"),
    ("needs_input", "trace:completed@b", "completed"),
    ("needs_input", "trace:failed@b", "failed"),
    ("needs_input", "trace:canceled@b", "canceled"),
    ("needs_input", "trace:canceled@a", "canceled"),
    ("needs_input", "receipt:rejected@b", "failed"),
    ("needs_input", "receipt:canceled@a", "canceled"),
    ("needs_input", "receipt:duplicate@b", "needs_input"),
    ("needs_input", "receipt:expired@a", "needs_input"),
    ("needs_input", "receipt:unsupported@b", "needs_input"),
]


@pytest.mark.parametrize("start,spec,end", LEGAL, ids=[f"{s}-{m}" for s, m, _ in LEGAL])
def test_legal_transition(at, start, spec, end):
    repo = at(start)
    before_files, before_commits = len(repo.event_files()), commit_count(repo)
    sent = repo.j(*spec_args(spec, at.opener))
    assert sent["committed"] is True and sent["work_id"] == W and sent["thread_id"] == THREAD
    assert len(repo.event_files()) == before_files + 1 and commit_count(repo) == before_commits + 1
    w = repo.j("work", "lookup", "--work", W)
    assert w["state"] == end
    last = w["history"][-1]
    assert (last["message_id"], last["state_before"], last["state_after"], last["refused"]) == \
        (sent["id"], start, end, None)
    assert w["diagnostics"] == []
    assert w["terminal"] is (end in TERMINAL)
    assert (w["terminal_at"] is not None) is (end in TERMINAL)
    if end in TERMINAL:
        assert w["terminal_at"] == sent["ts"]


def test_opening_row_say_and_capability_open_submitted_work(at):
    repo = at("submitted")
    opened = repo.j("send", "-s", B, "-c", CH, "-t", "thread_other", "--to", PC, "--work", "work_second", "-m", "go")
    w = repo.j("work", "lookup", "--work", "work_second")
    assert (w["state"], w["opened_by_peer_id"], w["target_peer_id"], w["thread_id"]) == \
        ("submitted", PB, PC, "thread_other")
    assert w["history"][0] == {"message_id": opened["id"], "kind": "say", "from": PB, "ts": opened["ts"],
                               "status": None, "state_before": None, "state_after": "submitted", "refused": None}
    repo.j("send", "-s", C, "-c", CH, "--surface", "direct", "--to", PA, "--work", "work_cap", "--kind", "capability",
           "--body", json.dumps(CAP))
    cap = repo.j("work", "lookup", "--work", "work_cap")
    assert (cap["state"], cap["surface"], cap["opened_by_peer_id"], cap["target_peer_id"]) == \
        ("submitted", "direct", PC, PA)
    assert cap["direct_id"].startswith("direct_")


def test_accept_verb_writes_receipt_then_trace(at):
    repo = at("submitted")
    moved = repo.j("accept", W, "-s", B)
    assert [e["kind"] for e in moved["events"]] == ["receipt", "trace"]
    w = repo.j("work", "lookup", "--work", W)
    assert [h["state_after"] for h in w["history"][-2:]] == ["submitted", "working"]
    assert w["accepted_by"] == PB and w["accepted_at"] == moved["events"][0]["ts"]
    assert repo.j("status", W)["status"] == "accepted"


def test_rejected_receipt_after_acceptance_fails_work_but_keeps_the_first_answer(at):
    """AGH moves active work to failed on receipt rejected; the handoff's answer stays the first one."""
    repo = at("working")
    repo.ok(*spec_args("receipt:rejected@b", at.opener))
    w = repo.j("work", "lookup", "--work", W)
    assert (w["state"], w["terminal_reason"]) == ("failed", "rejected")
    assert repo.j("status", W)["status"] == "accepted"


# ------------------------------------------------------------------ illegal rows

EVERY_MESSAGE = ["say@a", "say@b", "capability@a", "receipt:accepted@b", "receipt:rejected@b", "receipt:canceled@a",
                 "receipt:duplicate@b", "trace:working@b", "trace:needs_input@b", "trace:completed@b",
                 "trace:failed@a", "trace:canceled@a", "trace:canceled@b"]
CLOSED = [(s, m) for s in TERMINAL for m in EVERY_MESSAGE]


@pytest.mark.parametrize("start,spec", CLOSED, ids=[f"{s}-{m}" for s, m in CLOSED])
def test_terminal_work_refuses_everything_with_work_closed(at, start, spec):
    repo = at(start)
    err = refuse(repo, spec_args(spec, at.opener), "work_closed")
    assert start in err["message"]
    assert repo.j("work", "lookup", "--work", W)["state"] == start


ROLE = [(s, m) for s in ACTIVE for m in
        ("trace:working@a", "trace:needs_input@a", "trace:completed@a", "receipt:accepted@a", "receipt:rejected@a",
         "receipt:canceled@b")]


@pytest.mark.parametrize("start,spec", ROLE, ids=[f"{s}-{m}" for s, m in ROLE])
def test_each_lifecycle_message_has_its_sender(at, start, spec):
    repo = at(start)
    refuse(repo, spec_args(spec, at.opener), "not_target")


THIRD = [(s, m) for s in ACTIVE for m in ("say@c", "capability@c", "receipt:accepted@c", "trace:completed@c",
                                          "trace:canceled@c")]


@pytest.mark.parametrize("start,spec", THIRD, ids=[f"{s}-{m}" for s, m in THIRD])
def test_a_third_session_cannot_touch_the_work(at, start, spec):
    repo = at(start)
    err = refuse(repo, spec_args(spec, at.opener), "not_target")
    assert "neither the initiator" in err["message"]


@pytest.mark.parametrize("start", ACTIVE)
def test_continuation_must_be_addressed_to_the_counterparty(at, start):
    repo = at(start)
    err = refuse(repo, spec_args("say@a>c", at.opener), "not_target")
    assert "must be addressed to" in err["message"]
    err = refuse(repo, spec_args("say@b>c", at.opener), "not_target")
    assert PA in err["message"]


def test_needs_input_cannot_ask_again(at):
    refuse(at("needs_input"), spec_args("trace:needs_input@b", at.opener), "invalid_transition")


def test_a_second_acceptance_is_refused(at):
    repo = at("working")  # `progress` without a receipt counts as the acceptance
    refuse(repo, spec_args("receipt:accepted@b", at.opener), "already_responded")
    repo = at("submitted")
    repo.ok("accept", W, "-s", B)
    refuse(repo, ["accept", W, "-s", B], "already_responded")


def test_trace_never_moves_work_back_to_submitted(at):
    err = refuse(at("working"), spec_args("trace:submitted@b", at.opener), "invalid_transition")
    assert "working to submitted" in err["message"]


@pytest.mark.parametrize("start", ACTIVE + TERMINAL)
def test_continuation_in_another_container_is_refused(at, start):
    repo = at(start)
    refuse(repo, spec_args("say@a", at.opener) + ["-t", "thread_elsewhere"], "work_container_mismatch")
    refuse(repo, spec_args("trace:completed@b", at.opener) + ["--surface", "direct"], "work_container_mismatch")
    err = refuse(repo, spec_args("say@a", at.opener) + ["-c", "ops"], "work_container_mismatch")
    assert "open a new work_id" in err["hint"]


# ------------------------------------------------------------------ guard order


def test_guards_apply_in_order(at):
    """container -> participant -> counterparty -> terminal -> transition: the first failing guard answers."""
    repo = at("completed")
    # all five fail: another container, a third session, the wrong addressee, terminal work
    err = refuse(repo, spec_args("say@c>b", at.opener) + ["-t", "thread_elsewhere"], "work_container_mismatch")
    # right container: the participant guard answers before the terminal one
    err = refuse(repo, spec_args("say@c>b", at.opener), "not_target")
    assert "neither the initiator" in err["message"]
    # a participant writing to the wrong peer: the counterparty guard answers before the terminal one
    err = refuse(repo, spec_args("say@a>c", at.opener), "not_target")
    assert "must be addressed to" in err["message"]
    # a participant, right addressee, an illegal transition on terminal work: terminal answers first
    err = refuse(repo, spec_args("trace:needs_input@b", at.opener), "work_closed")
    # active work: the transition guard is the last one
    refuse(at("needs_input"), spec_args("trace:needs_input@b", at.opener), "invalid_transition")


# ------------------------------------------------------------------ opening and unknown work


@pytest.mark.parametrize("spec", ["receipt:accepted@b", "receipt:canceled@a", "trace:working@b", "trace:completed@b"])
def test_receipts_and_traces_cannot_open_work(at, spec):
    repo = at("submitted")
    err = refuse(repo, spec_args(spec, at.opener, work="work_unknown") + ["-t", THREAD], "work_not_found",
                 exit_code=4)
    assert "cannot open work" in err["message"]
    r = repo.h("work", "lookup", "--work", "work_unknown", "-o", "json")
    assert r.code == 4 and r.json["error"]["reason_code"] == "work_not_found"


def test_opening_work_needs_a_target(at):
    repo = at("submitted")
    refuse(repo, ["send", "-s", A, "-c", CH, "-t", THREAD, "--work", "work_nobody", "-m", "who?"], "invalid_surface",
           exit_code=2)


@pytest.mark.parametrize("verb", ["accept", "reject", "progress", "need-input", "complete", "fail", "cancel", "status"])
def test_verbs_on_unknown_work_exit_4(at, verb):
    repo = at("submitted")
    extra = ["--reason", "no"] if verb == "reject" else []
    sess = [] if verb == "status" else ["-s", B]
    refuse(repo, [verb, "work_nope", *sess, *extra], "work_not_found", exit_code=4)


def test_verbs_refuse_with_protocol_exit_codes(at):
    repo = at("working")
    refuse(repo, ["complete", W, "-s", C], "not_target")
    refuse(repo, ["progress", W, "-s", A], "not_target")
    err = refuse(repo, ["reject", W, "-s", B, "--reason", "changed my mind"], "already_responded")
    assert "handoff fail" in err["hint"]
    done = at("completed")
    for args in (["cancel", W, "-s", A], ["cancel", W, "-s", B], ["reply", W, "-s", A, "-m", "one more thing"],
                 ["accept", W, "-s", B], ["fail", W, "-s", B], ["progress", W, "-s", B]):
        refuse(done, args, "work_closed")


def test_late_message_human_output_names_the_reason(at):
    repo = at("canceled")
    before = snapshot(repo)
    r = repo.h("complete", W, "-s", B)
    assert r.code == 3 and "(work_closed)" in r.err and "hint:" in r.err
    assert snapshot(repo) == before


def test_past_expiry_is_refused_at_write(at):
    repo = at("submitted")
    refuse(repo, ["send", "-s", A, "-c", CH, "-t", THREAD, "-m", "stale", "--expires-at", "2020-01-01T00:00:00Z"],
           "expired")


# ------------------------------------------------------------------ flag at read


def _forge(repo, draft: dict) -> str:
    """Write an event past the CLI's checks (what a merge from a careless branch brings in)."""
    from handoff.app.workspace import Workspace
    ws = Workspace(repo.path)
    base = {"channel": CH, "surface": "thread", "thread_id": THREAD, "session_id": B, "from": PB, "to": PA}
    return ws.write(lambda _state: [{**base, **draft}], commit=True).events[0]["id"]


def test_late_message_brought_in_is_flagged_not_applied(at):
    repo = at("completed")
    before = repo.j("work", "lookup", "--work", W)
    late = _forge(repo, {"kind": "trace", "work_id": W, "body": {"state": "working", "message": "still on it"}})
    w = repo.j("work", "lookup", "--work", W)
    assert w["state"] == "completed" and w["terminal_at"] == before["terminal_at"]
    assert w["diagnostics"][-1]["message_id"] == late and w["diagnostics"][-1]["reason_code"] == "work_closed"
    assert w["history"][-1]["refused"] == "work_closed"
    msgs = repo.ok("threads", "messages", "--channel", CH, "--thread", THREAD, "-o", "jsonl").lines
    assert [m["refused"] for m in msgs if m["id"] == late] == ["work_closed"]


def test_orphan_receipt_brought_in_opens_nothing(at):
    repo = at("submitted")
    orphan = _forge(repo, {"kind": "receipt", "work_id": "work_orphan",
                           "body": {"status": "accepted", "for_id": "msg_unknown"}})
    r = repo.h("work", "lookup", "--work", "work_orphan", "-o", "json")
    assert r.code == 4
    from handoff.app.workspace import Workspace
    diags = Workspace(repo.path).state()["diagnostics"]
    assert [(d["id"], d["reason_code"]) for d in diags] == [(orphan, "work_not_found")]
    assert repo.j("status")["diagnostics"] == 1
