"""The index's ``timers`` table (open units with a deadline) and what the watcher reads through it.

The table must equal ``timers.row`` applied to a full reduce of every file, after every kind of
update (events folded on, units closing, agent-addressed units being bound, checkouts removing
files, pulls of events that sort earlier), and reminders computed from ``index.timer_units``
must equal reminders computed over every unit.  Real repos, the real CLI, real git.
"""
from __future__ import annotations

import json

from test_index import reference

from handoff import index
from handoff.app.workspace import Workspace
from handoff.core import deadlines, delivery, leases, timers
from handoff.core.model import parse_ts

T0 = {"HANDOFF_NOW": "2030-01-01T00:00:00Z"}
EVERY, MAX = 10 * 60_000, 3


def table(path) -> dict:
    ws = Workspace(path)
    state = ws.state(refresh=True)
    return {wid: (due, target, agent) for wid, due, target, agent in
            state.db.execute("SELECT wid, due, target, agent FROM timers")}


def expected(path) -> dict:
    out = {}
    for wid, w in reference(path)["work"].items():
        r = timers.row(w)
        if r is not None:
            out[wid] = r
    return out


def assert_timers_match(path) -> dict:
    got, want = table(path), expected(path)
    assert got == want
    assert_reminders_match(path)
    return got


def assert_reminders_match(path) -> None:
    """Reminders and the next timer through ``timer_units`` equal the full scan, for every session and time."""
    ref = reference(path)
    state = Workspace(path).state(refresh=True)
    sessions = [state["sessions"][sid] for sid in sorted(ref["sessions"])]
    dues = sorted({parse_ts(w["deadline_at"]) for w in ref["work"].values() if w.get("deadline_at")})
    times = [parse_ts("2029-12-31T00:00:00Z")] + [d + k for d in dues for k in (-1, 0, 1, EVERY + 5, 5 * EVERY)]
    for now in times:
        units_all = index.timer_units(state, sessions)
        assert deadlines.next_reminder_ms(ref, sessions, now, EVERY, MAX) == \
            deadlines.next_reminder_ms(state, sessions, now, EVERY, MAX, units_all)
        for s in sessions:
            units = index.timer_units(state, [s])
            for us in (units, units_all):
                full = deadlines.reminders_due(ref, s, now, EVERY, MAX)
                narrow = deadlines.reminders_due(state, s, now, EVERY, MAX, us)
                assert [(w["work_id"], n) for w, n in narrow] == [(w["work_id"], n) for w, n in full]
            full = delivery.due(ref, s, acked=set(), delivered=set(), now_ms=now, remind_every_ms=EVERY,
                                remind_max=MAX)
            narrow = delivery.due(index.for_inbox(state, s), s, acked=set(), delivered=set(), now_ms=now,
                                  remind_every_ms=EVERY, remind_max=MAX, units=units)
            assert json.dumps(narrow, sort_keys=True) == json.dumps(full, sort_keys=True)


def _request(repo, frm, to, work, deadline, env=T0):
    args = ["request", "--session", frm, "--to", to, "--channel", "general", "-d", f"do {work}", "--work", work]
    if deadline:
        args += ["--deadline", deadline]
    return repo.j(*args, env=env)


def test_timers_follow_units_opening_closing_and_binding(repo):
    repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    repo.session("bob", sid="sess_bob2")
    assert assert_timers_match(repo.path) == {}
    _request(repo, "sess_alice", b["peer_id"], "work_a", "30m")
    _request(repo, "sess_alice", b["peer_id"], "work_b", "2030-06-01T00:00:00Z")
    _request(repo, "sess_alice", "bob", "work_agent", "1h")  # addressed to the agent's name
    _request(repo, "sess_alice", b["peer_id"], "work_none", None)  # no deadline: never a timer
    _request(repo, "sess_bob", "alice", "work_back", "45m")
    got = assert_timers_match(repo.path)
    assert set(got) == {"work_a", "work_b", "work_agent", "work_back"}
    assert got["work_agent"][2] == "bob"
    repo.ok("accept", "work_agent", "--session", "sess_bob2", env=T0)  # bound to one session of bob
    repo.ok("complete", "work_a", "--session", "sess_bob", "-m", "done", env=T0)  # closed: no longer a timer
    late = {"HANDOFF_NOW": "2030-01-01T02:00:00Z"}
    repo.j("sweep", "--session", "sess_alice", env=late)  # expired ones fail
    got = assert_timers_match(repo.path)
    assert "work_a" not in got and "work_agent" not in got
    # the watcher reports the same reminders as before the table existed (a real process)
    _request(repo, "sess_alice", b["peer_id"], "work_late", "10m", env=late)
    later = {"HANDOFF_NOW": "2030-01-01T03:00:00Z"}
    notes = [json.loads(x) for x in repo.proc("watch", "--session", "sess_bob", "--once", "--remind-every", "10m",
                                              "-o", "jsonl", env=later).stdout.splitlines()]
    assert [(n["work"]["work_id"], n["reminder"]) for n in notes if n["notification"] == "reminder"] == \
        [("work_late", 3)]
    assert_timers_match(repo.path)


def test_timers_after_checkouts_and_pulls_that_refold(clones):
    a, b = clones("a"), clones("b")
    a.ok("init", "--workspace", "w")
    a.session("alice", sid="sess_alice")
    bob = a.session("bob", sid="sess_bob")
    a.git("push", "-q", "origin", "HEAD:main")
    b.git("pull", "-q", "origin", "main")
    # b writes older events, a newer ones; a then pulls b's (they sort before a's: a refold)
    b.ok("request", "--session", "sess_alice", "--to", bob["peer_id"], "--channel", "general", "-d", "from b",
         "--work", "work_b", "--deadline", "20m", "-o", "json", env={"HANDOFF_NOW": "2030-01-01T00:00:00Z"})
    a.ok("request", "--session", "sess_alice", "--to", bob["peer_id"], "--channel", "general", "-d", "from a",
         "--work", "work_a", "--deadline", "40m", "-o", "json", env={"HANDOFF_NOW": "2030-01-01T00:05:00Z"})
    assert set(assert_timers_match(a.path)) == {"work_a"}
    b.ok("complete", "work_b", "--session", "sess_bob", "-m", "done", env={"HANDOFF_NOW": "2030-01-01T00:01:00Z"})
    b.git("push", "-q", "origin", "HEAD:main")
    a.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    assert set(assert_timers_match(a.path)) == {"work_a"}  # work_b arrived already closed
    a.git("checkout", "-q", "-b", "side")
    a.ok("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "-d", "side",
         "--work", "work_side", "--deadline", "1h", "-o", "json", env={"HANDOFF_NOW": "2030-01-01T00:10:00Z"})
    assert set(assert_timers_match(a.path)) == {"work_a", "work_side"}
    a.git("checkout", "-q", "main")  # files vanish: a refold
    assert set(assert_timers_match(a.path)) == {"work_a"}
    index.drop(Workspace(a.path))  # a cold build gives the same table
    assert set(assert_timers_match(a.path)) == {"work_a"}


def test_lease_views_for_claimants_equal_all_views(clones):
    one = clones("one")
    one.ok("init", "--workspace", "w")
    one.session("alice", sid="sess_alice")
    one.session("bob", sid="sess_bob1")
    one.session("bob", sid="sess_bob2")
    for wid in ("work_r", "work_s"):
        one.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "-d", "race", "--work", wid)
    one.git("push", "-q", "origin", "main")
    two = clones("two")
    one.ok("claim", "work_r", "--session", "sess_bob1", "--lease", "1h", env={"HANDOFF_NOW": "2030-01-01T00:00:00Z"})
    two.ok("claim", "work_r", "--session", "sess_bob2", "--lease", "1h", env={"HANDOFF_NOW": "2030-01-01T00:00:01Z"})
    two.ok("claim", "work_s", "--session", "sess_bob2", "--lease", "1h", env={"HANDOFF_NOW": "2030-01-01T00:00:02Z"})
    two.git("push", "-q", "origin", "main")
    one.git("pull", "-q", "--no-rebase", "--no-edit")
    now = parse_ts("2030-01-01T00:10:00Z")
    ref = reference(one.path)
    state = Workspace(one.path).state(refresh=True)
    assert json.dumps(leases.all_views(state, now)) == json.dumps(leases.all_views(ref, now))
    for s in ref["sessions"].values():
        mine = leases.views_for(ref, now, leases.claimed_by(ref, s["peer_id"]))
        every = leases.all_views(ref, now)
        assert {k: v for k, v in every.items() if any(c["from"] == s["peer_id"] for c in v["losers"])} == \
            {k: v for k, v in mine.items() if any(c["from"] == s["peer_id"] for c in v["losers"])}
        assert all(v == every[k] for k, v in mine.items())
    lost = [n for n in delivery.due(ref, ref["sessions"]["sess_bob2"], acked=set(), delivered=set(), now_ms=now)
            if n["notification"] == "lease_lost"]
    assert [(n["work_id"], n["holder"]) for n in lost] == [("work_r", "bob.sess_bob1")]
