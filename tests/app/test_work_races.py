"""Two branches end the same work differently; real clones push, pull and merge them both ways."""
from __future__ import annotations

import pytest

W = "work_release_notes"


def at(hhmm: str) -> dict:
    return {"HANDOFF_NOW": f"2026-05-02T{hhmm}:00Z"}


@pytest.mark.parametrize("first", ["complete", "cancel"])
def test_complete_and_cancel_race_converges_in_both_merge_directions(clones, first):
    one = clones("one")
    one.ok("session", "new", "--agent", "writer", "--channel", "docs", "--id", "sess_writer", env=at("09:00"))
    one.ok("session", "new", "--agent", "editor", "--channel", "docs", "--id", "sess_editor", env=at("09:01"))
    one.ok("request", "-s", "sess_writer", "--to", "editor.sess_editor", "-c", "docs", "-d", "edit the release notes",
           "--work", W, env=at("09:02"))
    one.ok("accept", W, "-s", "sess_editor", env=at("09:03"))
    one.git("push", "-q", "origin", "main")
    two = clones("two")
    assert two.j("work", "lookup", "--work", W)["state"] == "working"

    done_at, stop_at = ("10:00", "10:05") if first == "complete" else ("10:05", "10:00")
    one.git("checkout", "-q", "-b", "done")
    done = one.j("complete", W, "-s", "sess_editor", "-m", "edited", "--result", '{"pages": 3}', env=at(done_at))
    one.git("push", "-q", "origin", "done")
    two.git("checkout", "-q", "-b", "stop")
    stop = two.j("cancel", W, "-s", "sess_writer", "-m", "release postponed", env=at(stop_at))
    two.git("push", "-q", "origin", "stop")
    assert one.j("work", "lookup", "--work", W)["state"] == "completed"
    assert two.j("work", "lookup", "--work", W)["state"] == "canceled"

    # each clone merges the other branch into its own: opposite directions, real pulls and merge commits
    one.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "stop")
    two.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "done")
    assert len(one.git("rev-list", "--merges", "HEAD").split()) == 1
    assert len(two.git("rev-list", "--merges", "HEAD").split()) == 1
    assert one.git("rev-parse", "HEAD^{tree}") == two.git("rev-parse", "HEAD^{tree}")

    for args in (("work", "lookup", "--work", W), ("work", "list"), ("list",), ("log", "--work", W), ("metrics",)):
        a, b = one.ok(*args, "-o", "json", env=at("11:00")), two.ok(*args, "-o", "json", env=at("11:00"))
        assert a.out == b.out, args
    w = one.j("work", "lookup", "--work", W)
    winner, loser = (done, stop) if first == "complete" else (stop, done)
    winner_id, loser_id = winner["events"][-1]["id"], loser["events"][-1]["id"]
    assert w["state"] == ("completed" if first == "complete" else "canceled")
    assert w["terminal_at"] == winner["events"][-1]["ts"]
    assert w["result"] == ({"pages": 3} if first == "complete" else None)
    assert [(d["message_id"], d["reason_code"]) for d in w["diagnostics"]] == [(loser_id, "work_closed")]
    assert [h["message_id"] for h in w["history"]][-2:] == [winner_id, loser_id]
    assert w["history"][-1]["refused"] == "work_closed"
    assert one.j("status")["diagnostics"] == 1
    log = one.j("log", "--work", W)["entries"]
    assert [e["refused"] for e in log if e["id"] == loser_id] == ["work_closed"]
    # the audit names the commit on the branch that added each file, whichever clone merged
    commit_of = {e["id"]: e["commit"]["sha"] for e in log}
    assert commit_of[winner_id] == (done if first == "complete" else stop)["commit"]
    assert commit_of[loser_id] == (stop if first == "complete" else done)["commit"]

    # once merged, the loser's side cannot write on the closed work any more
    r = two.h("complete", W, "-s", "sess_editor", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "work_closed"


def test_two_sessions_of_the_addressed_agent_race_to_accept(clones):
    """A handoff to an agent name binds to the first of its sessions that answers; the other is refused."""
    one = clones("one")
    one.ok("session", "new", "--agent", "lead", "--channel", "ops", "--id", "sess_lead", env=at("08:00"))
    one.ok("session", "new", "--agent", "oncall", "--channel", "ops", "--id", "sess_night", env=at("08:01"))
    one.ok("session", "new", "--agent", "oncall", "--channel", "ops", "--id", "sess_day", env=at("08:02"))
    one.ok("request", "-s", "sess_lead", "--to", "oncall", "-c", "ops", "-d", "rotate the keys", "--work", W,
           env=at("08:03"))
    one.git("push", "-q", "origin", "main")
    two = clones("two")
    one.git("checkout", "-q", "-b", "night")
    one.ok("accept", W, "-s", "sess_night", env=at("08:10"))
    one.git("push", "-q", "origin", "night")
    two.git("checkout", "-q", "-b", "day")
    two.ok("accept", W, "-s", "sess_day", env=at("08:20"))
    two.git("push", "-q", "origin", "day")
    one.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "day")
    two.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "night")
    a, b = (c.ok("work", "lookup", "--work", W, "-o", "json").out for c in (one, two))
    assert a == b
    w = one.j("work", "lookup", "--work", W)
    assert (w["target_peer_id"], w["accepted_by"], w["state"]) == ("oncall.sess_night",) * 2 + ("working",)
    assert {d["reason_code"] for d in w["diagnostics"]} == {"not_target"}
    assert len(w["diagnostics"]) == 2  # the day session's receipt and trace
    assert one.j("status", W)["status"] == "accepted"
