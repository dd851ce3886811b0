"""A closed session is not replayed by `session new --id`; `--reopen` reopens it with an event that
merges deterministically (the reopen names the close it undoes)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

NEW = ("session", "new", "--agent", "reviewer", "--channel", "release", "--id", "sess_rev")


_BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)  # (verify wants recent clocks)


def at(hhmm: str) -> dict:
    """A clock ``hhmm`` past a base a few hours ago (09:00 is the base)."""
    h, m = map(int, hhmm.split(":"))
    t = _BASE + timedelta(hours=h - 9, minutes=m)
    return {"HANDOFF_NOW": t.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_session_new_refuses_a_closed_id_and_reopen_brings_it_back(repo):
    coord = repo.session("coordinator", "release", "sess_coord")
    repo.j(*NEW)
    repo.ok("request", "-s", coord["session_id"], "--to", "reviewer.sess_rev", "-c", "release", "-d", "review",
            "--work", "work_r")
    close = repo.j("session", "close", "sess_rev")
    files = len(repo.event_files())
    refused = repo.h(*NEW, "-o", "json")
    assert refused.code == 3, refused.out
    err = refused.json["error"]
    assert err["reason_code"] == "session_closed" and "--reopen" in err["hint"] and "leave --id out" in err["hint"]
    assert len(repo.event_files()) == files  # nothing written
    shown = repo.h("brief", "-s", "sess_rev")  # the human brief says so and shows the two ways on
    assert shown.code == 0 and "[CLOSED]" in shown.out and "session sess_rev is closed" in shown.out
    assert "$ handoff session new --agent reviewer" in shown.out and "--id sess_rev --reopen" in shown.out
    assert repo.h("accept", "work_r", "-s", "sess_rev", "-o", "json").json["error"]["reason_code"] == "session_closed"

    opened = repo.j(*NEW, "--reopen")
    assert opened["state"] == "active" and opened["replayed"] is False and opened["reopened_at"]
    assert repo.j("session", "status", "sess_rev")["state"] == "active"
    again = repo.j(*NEW, "--reopen")  # a retry: the reopen itself, nothing new
    assert again["replayed"] is True and again["event_id"] == opened["event_id"]
    assert repo.j(*NEW)["event_id"] == opened["event_id"]
    assert repo.j("accept", "work_r", "-s", "sess_rev")["work"]["state"] == "working"
    # the reopen is an event of its own, after the close; the close stays in the history
    kinds = [e["kind"] for e in repo.j("session", "events", "sess_rev")["events"]]
    assert kinds[:3] == ["session-open", "session-close", "session-open"]
    assert close["event_id"] in [e["id"] for e in repo.j("session", "events", "sess_rev")["events"]]
    # someone else's identity cannot reopen it
    other = repo.h("session", "new", "--agent", "mallory", "--channel", "release", "--id", "sess_rev", "--reopen",
                   "-o", "json")
    assert other.code == 3 and other.json["error"]["reason_code"] == "id_conflict"


def test_reopen_merges_the_same_way_in_both_directions(clones):
    a = clones("a")
    a.ok(*NEW, env=at("09:00"))
    a.ok("session", "close", "sess_rev", env=at("09:30"))
    a.git("push", "-q", "origin", "main")
    b = clones("b")
    assert b.j("session", "status", "sess_rev")["state"] == "closed"

    # b reopens the session on its branch; its reviewer's verify finds nothing wrong with that
    b.git("checkout", "-q", "-b", "reopen")
    b.ok(*NEW, "--reopen", env=at("10:00"))
    sent = b.j("send", "-s", "sess_rev", "-c", "release", "-m", "back", env=at("10:01"))
    b.git("push", "-q", "origin", "reopen")
    b.git("fetch", "-q", "origin")
    rep = b.h("verify", "--base", "origin/main", "-o", "json")
    assert rep.code == 0 and not [f for f in rep.json["findings"] if f["severity"] == "error"], rep.out

    # a merges it: the session is open again there too, and b's message was written by an open session
    a.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "reopen")
    assert a.j("session", "status", "sess_rev")["state"] == "active"
    assert sent["id"] in [m["id"] for m in a.j("session", "history", "sess_rev")["messages"]]

    # two clones race: both saw the 10:30 close; a reopens (10:40) and closes it again (11:00), while c
    # reopens it at 12:00.  c's reopen names the 10:30 close, which is no longer the last: it is not applied
    a.ok("session", "close", "sess_rev", env=at("10:30"))
    a.git("push", "-q", "origin", "main")
    c = clones("c")
    a.ok(*NEW, "--reopen", env=at("10:40"))
    a.ok("session", "close", "sess_rev", env=at("11:00"))
    a.git("push", "-q", "origin", "main")
    c.git("checkout", "-q", "-b", "late")
    assert c.j(*NEW, "--reopen", env=at("12:00"))["state"] == "active"  # (as far as c knows)
    c.git("push", "-q", "origin", "late")
    a.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "late")
    c.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    sa = a.ok("session", "status", "sess_rev", "-o", "json", env=at("13:00")).out
    sc = c.ok("session", "status", "sess_rev", "-o", "json", env=at("13:00")).out
    assert sa == sc
    assert a.j("session", "status", "sess_rev")["state"] == "closed"
    assert c.h("send", "-s", "sess_rev", "-c", "release", "-m", "x", "-o", "json").json["error"]["reason_code"] == \
        "session_closed"
    # and reopening now names the last close: it applies, in either clone
    assert c.j(*NEW, "--reopen", env=at("13:10"))["state"] == "active"
    from support.hostile import assert_index_agrees
    assert_index_agrees(a.path)
    assert_index_agrees(c.path)
