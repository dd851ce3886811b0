"""wait, checkpoints, claims and leases, deadlines and sweep, idempotent retries (issue 4)."""
from __future__ import annotations

import json
import subprocess
import sys

from support.watchproc import cli_env


def _pair(repo):
    a = repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    return a, b


def _open(repo, b, work="work_w", *extra):
    return repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general",
                  "-d", "do the thing", "--work", work, *extra)


def _wait_proc(repo, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "handoff", "wait", *args, "-o", "json"], cwd=repo.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())


# ------------------------------------------------------------------- wait


def test_wait_blocks_until_another_process_completes(repo):
    _, b = _pair(repo)
    _open(repo, b)
    waiter = _wait_proc(repo, "work_w", "--timeout", "120")
    repo.ok("accept", "work_w", "--session", "sess_bob")
    repo.ok("progress", "work_w", "--session", "sess_bob", "-m", "half", "--checkpoint", '{"step": 1}')
    assert waiter.poll() is None  # still waiting: working is not terminal
    repo.ok("complete", "work_w", "--session", "sess_bob", "--result", '{"ok": true}')
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    data = json.loads(out)
    assert data["wait_result"] == "completed" and data["result"] == {"ok": True}
    assert data["checkpoint"] == {"step": 1}


def test_wait_exit_codes(repo):
    _, b = _pair(repo)
    for wid in ("work_f", "work_c", "work_n", "work_t"):
        _open(repo, b, wid)
    repo.ok("reject", "work_f", "--session", "sess_bob", "--reason", "busy")
    repo.ok("cancel", "work_c", "--session", "sess_alice")
    repo.ok("accept", "work_n", "--session", "sess_bob")
    repo.ok("need-input", "work_n", "--session", "sess_bob", "-m", "which db?")
    assert repo.h("wait", "work_f", "-o", "json").code == 6
    r = repo.h("wait", "work_c", "-o", "json")
    assert r.code == 7 and r.json["wait_result"] == "canceled"
    r = repo.h("wait", "work_n", "--until-input", "-o", "json")
    assert r.code == 8 and r.json["state"] == "needs_input"
    r = repo.h("wait", "work_t", "--timeout", "0.3", "-o", "json")
    assert r.code == 124 and r.json["wait_result"] == "timeout" and r.json["state"] == "submitted"
    r = repo.h("wait", "work_nope", "--timeout", "1", "-o", "json")
    assert r.code == 4 and r.json["error"]["reason_code"] == "work_not_found"
    repo.ok("accept", "work_t", "--session", "sess_bob")
    repo.ok("complete", "work_t", "--session", "sess_bob")
    assert repo.h("wait", "work_t").code == 0


# ------------------------------------------------------------ checkpoints


def test_latest_checkpoint_on_work_inbox_and_list(repo):
    _, b = _pair(repo)
    _open(repo, b)
    repo.ok("accept", "work_w", "--session", "sess_bob")
    repo.ok("progress", "work_w", "--session", "sess_bob", "--checkpoint", '{"batch": 1}')
    repo.ok("progress", "work_w", "--session", "sess_bob", "-m", "two", "--checkpoint", '{"batch": 2}')
    assert repo.j("work", "status", "--work", "work_w")["checkpoint"] == {"batch": 2}
    opened = [w for w in repo.j("work", "list", "--session", "sess_bob", "--state", "open")["work"]]
    assert [w["checkpoint"] for w in opened] == [{"batch": 2}]
    repo.ok("reply", "work_w", "--session", "sess_alice", "-m", "how far?")
    entry = repo.j("inbox", "--session", "sess_bob")["entries"][0]
    assert entry["work"]["checkpoint"] == {"batch": 2}
    assert "checkpoint" in repo.ok("work", "status", "--work", "work_w").out


# ----------------------------------------------------------------- leases


def test_claim_heartbeat_release_and_expiry(repo):
    a, b = _pair(repo)
    repo.session("bob", sid="sess_bob2")
    repo.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "-d", "any bob",
           "--work", "work_w")
    t0 = "2030-01-01T00:00:00Z"
    got = repo.j("claim", "work_w", "--session", "sess_bob", "--lease", "10m", env={"HANDOFF_NOW": t0})
    assert got["lease"]["holder"] == b["peer_id"] and got["lease"]["lease_until"].startswith("2030-01-01T00:10:00")
    r = repo.h("claim", "work_w", "--session", "sess_bob2", "-o", "json", env={"HANDOFF_NOW": "2030-01-01T00:05:00Z"})
    assert r.code == 3 and r.json["error"]["reason_code"] == "lease_held"
    assert r.json["error"]["details"]["holder"] == b["peer_id"]
    hb = repo.j("heartbeat", "work_w", "--session", "sess_bob", env={"HANDOFF_NOW": "2030-01-01T00:08:00Z"})
    assert hb["lease"]["lease_until"].startswith("2030-01-01T00:18:00")
    assert repo.h("heartbeat", "work_w", "--session", "sess_bob2", env={"HANDOFF_NOW": t0}).code == 3
    # nobody heartbeats: once the lease lapsed another session of the agent may claim
    late = {"HANDOFF_NOW": "2030-01-01T00:20:00Z"}
    st = repo.j("work", "status", "--work", "work_w", env=late)
    assert st["lease"]["holder"] is None and st["lease"]["expired"] is True
    got = repo.j("claim", "work_w", "--session", "sess_bob2", env=late)
    assert got["lease"]["holder"] == "bob.sess_bob2"
    r = repo.h("heartbeat", "work_w", "--session", "sess_bob", "-o", "json", env=late)
    assert r.code == 3 and r.json["error"]["reason_code"] == "no_lease"
    rel = repo.j("release", "work_w", "--session", "sess_bob2", env=late)
    assert rel["lease"]["holder"] is None
    assert repo.h("release", "work_w", "--session", "sess_bob2", env=late).code == 3
    # outsiders may not claim; terminal work cannot be claimed
    repo.session("carol", sid="sess_carol")
    r = repo.h("claim", "work_w", "--session", "sess_carol", "-o", "json", env=late)
    assert r.code == 3 and r.json["error"]["reason_code"] == "not_participant"
    repo.ok("cancel", "work_w", "--session", "sess_alice")
    r = repo.h("claim", "work_w", "--session", "sess_bob", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "work_closed"


def test_claims_racing_on_two_branches_resolve_deterministically(clones):
    one = clones("one")
    one.ok("init", "--workspace", "w")
    one.session("alice", sid="sess_alice")
    one.session("bob", sid="sess_bob1")
    one.session("bob", sid="sess_bob2")
    one.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "-d", "race", "--work", "work_r")
    one.git("push", "-q", "origin", "main")
    two = clones("two")
    # both claim at once, each on its own clone; bob1's claim is first in event order (earlier clock)
    one.ok("claim", "work_r", "--session", "sess_bob1", "--lease", "1h", env={"HANDOFF_NOW": "2030-01-01T00:00:00Z"})
    two.ok("claim", "work_r", "--session", "sess_bob2", "--lease", "1h", env={"HANDOFF_NOW": "2030-01-01T00:00:01Z"})
    two.git("push", "-q", "origin", "main")
    one.git("pull", "-q", "--no-rebase", "--no-edit")
    one.git("push", "-q", "origin", "main")
    two.git("pull", "-q", "--no-rebase", "--no-edit")
    now = {"HANDOFF_NOW": "2030-01-01T00:10:00Z"}
    views = [r.j("work", "status", "--work", "work_r", env=now)["lease"] for r in (one, two)]
    assert views[0] == views[1]
    lease = views[0]
    assert lease["holder"] == "bob.sess_bob1"
    assert [(c["from"], c["reason_code"]) for c in lease["losers"]] == [("bob.sess_bob2", "lease_held")]
    # the loser is told: by its watcher, and by a refusal when it heartbeats
    notes = two.ok("watch", "--session", "sess_bob2", "--once", "-o", "jsonl", env=now).lines
    lost = [n for n in notes if n["notification"] == "lease_lost"]
    assert len(lost) == 1 and lost[0]["holder"] == "bob.sess_bob1" and lost[0]["work_id"] == "work_r"
    r = two.h("heartbeat", "work_r", "--session", "sess_bob2", "-o", "json", env=now)
    assert r.code == 3 and r.json["error"]["reason_code"] == "no_lease"


# ------------------------------------------------------------- deadlines


def test_deadline_overdue_sweep_and_reminders(repo):
    a, b = _pair(repo)
    t0 = {"HANDOFF_NOW": "2030-01-01T00:00:00Z"}
    repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "soon",
           "--work", "work_d", "--deadline", "30m", env=t0)
    repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "later",
           "--work", "work_l", "--deadline", "2030-06-01T00:00:00Z", env=t0)
    assert repo.j("work", "status", "--work", "work_d", env=t0)["overdue"] is False
    late = {"HANDOFF_NOW": "2030-01-01T01:00:00Z"}
    assert repo.j("work", "status", "--work", "work_d", env=late)["overdue"] is True
    assert repo.j("status", "work_d", env=late)["overdue"] is True
    # reminders: the target is re-notified while overdue (the latest due one, bounded)
    notes = repo.ok("watch", "--session", "sess_bob", "--once", "--remind-every", "10m", "-o", "jsonl", env=late).lines
    assert sorted(n["notification"] for n in notes) == ["message", "message", "reminder"]
    rem = next(n for n in notes if n["notification"] == "reminder")
    assert rem["work"]["work_id"] == "work_d" and rem["reminder"] == 3 and rem["work"]["overdue"] is True
    assert repo.ok("watch", "--session", "sess_bob", "--once", "--remind-every", "10m", "-o", "jsonl", env=late).out == ""
    assert repo.ok("watch", "--session", "sess_alice", "--once", "-o", "jsonl", env=late).out == ""  # not the target
    dry = repo.j("sweep", "--session", "sess_alice", "--dry-run", env=late)
    assert [w["work_id"] for w in dry["swept"]] == ["work_d"]
    assert repo.j("work", "status", "--work", "work_d", env=late)["state"] == "submitted"
    done = repo.j("sweep", "--session", "sess_alice", env=late)
    assert [w["work_id"] for w in done["swept"]] == ["work_d"]
    w = repo.j("work", "status", "--work", "work_d", env=late)
    assert w["state"] == "failed" and w["terminal_reason"] == "expired" and w["overdue"] is False
    assert repo.h("wait", "work_d", env=late).code == 6
    assert repo.j("sweep", "--session", "sess_alice", env=late)["swept"] == []  # nothing left: idempotent
    repo.session("carol", sid="sess_carol")
    assert repo.j("sweep", "--session", "sess_carol", env={"HANDOFF_NOW": "2031-01-01T00:00:00Z"})["swept"] == []


# ------------------------------------------------------------ idempotency


def _files(repo) -> int:
    return len(repo.event_files())


def test_every_write_is_idempotent_with_id(repo):
    def twice(*args, env=None):
        first = repo.j(*args, env=env)
        n = _files(repo)
        head = repo.git("rev-parse", "HEAD")
        again = repo.j(*args, env=env)
        assert _files(repo) == n and repo.git("rev-parse", "HEAD") == head, args
        assert again.get("replayed") is True, (args, again)
        return first, again

    s1, s2 = twice("session", "new", "--agent", "alice", "--channel", "general", "--id", "sess_alice")
    assert s1["session_id"] == s2["session_id"] and s1["event_id"] == s2["event_id"]
    b = repo.session("bob", sid="sess_bob")
    twice("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "hi", "--id", "k-send")
    r1, r2 = twice("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "job",
                   "--id", "k-req", "--deadline", "2h")
    assert r1["handoff_id"] == r2["handoff_id"] == "work_k-req"
    msg_id = "msg_01jv8ab0000000000000000000"
    r1, r2 = twice("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "job2",
                   "--id", msg_id)
    assert r1["handoff_id"] == r2["handoff_id"]
    wid = r1["handoff_id"]
    a1, a2 = twice("accept", "work_k-req", "--session", "sess_bob", "--id", "k-acc")
    assert [e["kind"] for e in a1["events"]] == [e["kind"] for e in a2["events"]] == ["receipt", "trace"]
    assert [e["id"] for e in a1["events"]] == [e["id"] for e in a2["events"]]
    twice("progress", "work_k-req", "--session", "sess_bob", "--checkpoint", '{"n": 1}', "--id", "k-prog")
    twice("reply", "work_k-req", "--session", "sess_alice", "-m", "thanks", "--id", "k-reply")
    twice("need-input", "work_k-req", "--session", "sess_bob", "-m", "?", "--id", "k-need")
    twice("claim", "work_k-req", "--session", "sess_bob", "--lease", "5m", "--id", "k-claim")
    twice("heartbeat", "work_k-req", "--session", "sess_bob", "--lease", "5m", "--id", "k-hb")
    twice("release", "work_k-req", "--session", "sess_bob", "--id", "k-rel")
    twice("complete", "work_k-req", "--session", "sess_bob", "--result", '{"x": 1}', "--id", "k-done")
    twice("reject", wid, "--session", "sess_bob", "--reason", "no", "--id", "k-rej")
    r3 = repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "j3",
                "--work", "work_3")
    twice("fail", "work_3", "--session", "sess_alice", "-m", "nope", "--id", "k-fail")
    repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "j4",
           "--work", "work_4")
    twice("cancel", "work_4", "--session", "sess_alice", "--id", "k-cancel")
    repo.j("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "j5",
           "--work", "work_5", "--deadline", "1m", env={"HANDOFF_NOW": "2020-01-01T00:00:00Z"})
    twice("sweep", "--session", "sess_alice", "--id", "k-sweep")
    twice("session", "close", "sess_bob", "--id", "k-close")
    assert r3["handoff_id"] == "work_3"


def test_same_id_different_content_is_refused(repo):
    _, b = _pair(repo)
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "one", "--id", "k1")
    r = repo.h("send", "--session", "sess_alice", "--channel", "general", "--to", b["peer_id"], "-m", "two",
               "--id", "k1", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "id_conflict" and "k1" in r.json["error"]["message"]
    repo.ok("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "a", "--id", "k2")
    r = repo.h("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "b",
               "--id", "k2", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "id_conflict"
    r = repo.h("session", "new", "--agent", "mallory", "--channel", "general", "--id", "sess_alice", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "id_conflict"
    repo.ok("claim", "work_k2", "--session", "sess_bob", "--lease", "5m", "--id", "k3")
    r = repo.h("claim", "work_k2", "--session", "sess_bob", "--lease", "9m", "--id", "k3", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "id_conflict"
    repo.ok("accept", "work_k2", "--session", "sess_bob", "--id", "k4")
    r = repo.h("progress", "work_k2", "--session", "sess_bob", "-m", "x", "--id", "k4", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "id_conflict"


def test_verb_retry_after_the_work_moved_on_still_replays(repo):
    _, b = _pair(repo)
    repo.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "-d", "any bob", "--work", "work_m")
    first = repo.j("reply", "work_m", "--session", "sess_alice", "-m", "more context", "--id", "k-more")
    repo.ok("accept", "work_m", "--session", "sess_bob")  # binds the unit to bob.sess_bob; history moves on
    repo.ok("progress", "work_m", "--session", "sess_bob", "-m", "going")
    n = len(repo.event_files())
    again = repo.j("reply", "work_m", "--session", "sess_alice", "-m", "more context", "--id", "k-more")
    assert again["replayed"] is True and again["events"][0]["id"] == first["events"][0]["id"]
    assert len(repo.event_files()) == n
