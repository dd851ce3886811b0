"""Identity under hostile input: who owns a session, who may close it, which config judges a range.

Every attack is a real file committed in a real repository by another git author (what a hostile
branch or pull request holds), then judged by the real CLI: ``handoff verify`` over real commits and
branches, and the owner's own commands.
"""
from __future__ import annotations

import os
import random
import subprocess

import yaml
from conftest import ROOT

from handoff.app.workspace import Workspace
from handoff.core import model, reducer
from handoff.core.yaml import codec
from handoff.store import clock

DAY_MS = 24 * 3600 * 1000
MALLORY = {"GIT_AUTHOR_NAME": "Mallory", "GIT_AUTHOR_EMAIL": "mallory@evil.example",
           "GIT_COMMITTER_NAME": "Mallory", "GIT_COMMITTER_EMAIL": "mallory@evil.example"}


def forge(repo, kind: str, sid: str, peer: str, *, at_ms: int, body: dict | None = None,
          author: dict = MALLORY, message: str = "forged") -> str:
    """Write one crafted event (valid by schema, dated ``at_ms``) and commit it as ``author``."""
    ev = {"protocol": model.PROTOCOL, "workspace_id": "test", "kind": kind, "from": peer, "session_id": sid,
          "body": body or {}, "ts": model.format_ts(at_ms), "hlc": model.format_hlc(at_ms, 0),
          "id": model.new_event_id(kind, clock.new_ulid(at_ms))}
    model.check_event(ev)
    rel = f".handoffs/{model.event_path(ev)}"
    path = repo.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codec.dump(ev))
    repo.git("add", rel)
    commit_as(repo, author, message)
    return rel


def forged_open(repo, sid: str, agent: str, *, at_ms: int, **kw) -> str:
    return forge(repo, "session-open", sid, f"{agent}.{sid}", at_ms=at_ms,
                 body={"agent": agent, "channels": ["general"]}, **kw)


def commit_as(repo, author: dict, message: str) -> None:
    proc = subprocess.run(["git", "commit", "-qm", message], cwd=repo.path, capture_output=True, text=True,
                          env={**os.environ, **author})
    assert proc.returncode == 0, proc.stderr


def verify(repo, *args):
    r = repo.h("verify", *args, "-o", "json")
    return r.code, r.json


def errors_of(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report["findings"]:
        if f["severity"] == "error":
            out.setdefault(f["path"], set()).add(f["code"])
    return out


def opened_at(repo, sid: str) -> int:
    return model.parse_ts(repo.j("session", "status", sid)["opened_at"])


def path_of(repo, event_id: str) -> str:
    return next(str(p.relative_to(repo.path)) for p in repo.event_files() if event_id in p.name)


# ------------------------------------------------------------------ a second open of a session id


def test_backdated_second_open_is_refused_by_verify_and_the_owner_keeps_writing_as_itself(repo):
    owner = repo.session("alice", "general", sid="sess_alice")
    repo.git("checkout", "-q", "-b", "attack")
    forged = forged_open(repo, "sess_alice", "mallory", at_ms=opened_at(repo, "sess_alice") - 3 * DAY_MS)

    code, rep = verify(repo, "--base", "main")
    assert code == 5, rep
    assert errors_of(rep) == {forged: {"session_taken", "clock_backdated"}}
    owner_path = path_of(repo, owner["event_id"])
    assert all(f["path"] != owner_path for f in rep["findings"]), rep  # the victim's file is not blamed

    # the reducer is deterministic: whatever the file order, one open owns the id, the other is a diagnostic
    records = list(Workspace(str(repo.path)).records())
    states = []
    for seed in range(5):
        random.Random(seed).shuffle(records)
        st = reducer.reduce(records)
        states.append((st["sessions"]["sess_alice"]["open_event_id"],
                       sorted((d["path"], d["reason_code"]) for d in st["diagnostics"])))
    assert len(set(map(repr, states))) == 1
    assert any(code == "session_taken" for _, code in states[0][1])
    cached = Workspace(str(repo.path)).state(refresh=True).materialize()  # the index's fold agrees
    assert cached["sessions"] == reducer.reduce(records)["sessions"]
    assert sorted((d["path"], d["reason_code"]) for d in cached["diagnostics"]
                  if d["reason_code"] != "future_timestamp") == states[0][1]

    # the owner's next send still goes out as the owner's peer, not the attacker's
    sent = repo.j("send", "--session", "sess_alice", "--channel", "general", "--text", "still me")
    ev = codec.load((repo.path / sent["paths"][0]).read_bytes())
    assert ev["from"] == owner["peer_id"] == "alice.sess_alice"
    by_peer = repo.j("send", "--session", "alice.sess_alice", "--channel", "general", "--text", "me, by peer")
    assert codec.load((repo.path / by_peer["paths"][0]).read_bytes())["from"] == "alice.sess_alice"
    # and the owner's inbox is the owner's: a direct message to its peer is there
    repo.session("bob", "general", sid="sess_bob")
    dm = repo.j("send", "--session", "sess_bob", "--channel", "general", "--to", "alice.sess_alice", "--text", "hi")
    inbox = repo.j("inbox", "--session", "sess_alice")
    assert inbox["peer_id"] == "alice.sess_alice" and dm["id"] in {e["id"] for e in inbox["entries"]}, inbox


def test_second_open_refused_whatever_its_clock_and_twice_in_one_branch(repo):
    repo.session("alice", "general", sid="sess_alice")
    repo.git("checkout", "-q", "-b", "attack")
    later = forged_open(repo, "sess_alice", "mallory", at_ms=opened_at(repo, "sess_alice") + 1000)
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and errors_of(rep) == {later: {"session_taken"}}, rep

    # both opens new on the branch: the one that sorts second is refused
    repo.git("checkout", "-q", "main")
    repo.git("checkout", "-q", "-b", "twice")
    first = repo.session("bob", "general", sid="sess_bob")
    second = forged_open(repo, "sess_bob", "mallory", at_ms=opened_at(repo, "sess_bob") + 1000)
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and errors_of(rep) == {second: {"session_taken"}}, rep
    assert path_of(repo, first["event_id"]) not in errors_of(rep)


def test_session_new_with_a_taken_id_is_refused_clearly(repo):
    repo.session("alice", "general", sid="sess_alice")
    r = repo.h("session", "new", "--agent", "mallory", "--channel", "general", "--id", "sess_alice", "-o", "json")
    assert r.code == 3, r.out
    err = r.json["error"]
    assert err["reason_code"] == "id_conflict" and "belongs to alice.sess_alice" in err["message"], err
    assert "new id" in err["hint"]
    assert "Traceback" not in r.err


# ------------------------------------------------------------------ who may close a session


def test_close_by_another_agent_is_ignored_and_refused_by_verify(repo):
    repo.session("alice", "general", sid="sess_alice")
    repo.session("mallory", "general", sid="sess_mallory")
    repo.git("checkout", "-q", "-b", "attack")
    close = forge(repo, "session-close", "sess_alice", "mallory.sess_mallory",
                  at_ms=opened_at(repo, "sess_alice") + 5000)

    status = repo.j("session", "status", "sess_alice")
    assert status["state"] == "active"
    ws = Workspace(str(repo.path))
    cached = ws.state(refresh=True).materialize()
    assert [(d["path"], d["reason_code"]) for d in cached["diagnostics"]] == [(close[len(".handoffs/"):],
                                                                               "not_session_owner")]
    assert cached["sessions"] == reducer.reduce(ws.records())["sessions"]
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and errors_of(rep) == {close: {"not_session_owner"}}, rep
    # the owner can still write: the session was never closed
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--text", "still open")


def test_close_by_the_same_agent_or_an_admin_is_applied(repo):
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text() + "identity:\n  admins: ['lead']\n")
    repo.git("commit", "-qam", "lead is an admin")
    repo.session("alice", "general", sid="sess_alice")
    repo.session("alice", "general", sid="sess_alice2")
    repo.session("bob", "general", sid="sess_bob")
    repo.session("lead", "general", sid="sess_lead")
    repo.session("mallory", "general", sid="sess_mallory")
    repo.git("checkout", "-q", "-b", "cleanup")
    # the CLI writes the close as the acting session, and refuses one the reducer would ignore
    refused = repo.h("session", "close", "sess_bob", "--session", "sess_mallory", "-o", "json")
    assert refused.code == 3 and refused.json["error"]["reason_code"] == "not_session_owner", refused.out
    assert "identity.admins" in refused.json["error"]["hint"]
    mine = repo.j("session", "close", "sess_alice", "--session", "sess_alice2")
    admin = repo.j("session", "close", "sess_bob", env={"HANDOFF_SESSION": "sess_lead"})
    assert codec.load((repo.path / mine["path"]).read_bytes())["from"] == "alice.sess_alice2"
    assert codec.load((repo.path / admin["path"]).read_bytes())["from"] == "lead.sess_lead"
    code, rep = verify(repo, "--base", "main")
    assert code == 0, rep
    assert repo.j("session", "status", "sess_alice")["state"] == "closed"
    assert repo.j("session", "status", "sess_bob")["state"] == "closed"
    # the rule follows the config: without the admin entry the lead's close of bob's session is ignored
    cfg.write_text(cfg.read_text().replace("  admins: ['lead']\n", "  admins: []\n"))
    assert repo.j("session", "status", "sess_bob")["state"] == "active"
    assert repo.j("session", "status", "sess_alice")["state"] == "closed"
    code, rep = verify(repo, "--base", "main")
    assert code == 0, rep  # verify judges by main's config, which still names the lead


# ------------------------------------------------------------------ the config that judges a range


def _identity_main(repo):
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text() + "identity:\n  agents:\n    alice: ['alice@example.com']\n"
                   "    mallory: ['mallory@evil.example']\n")
    repo.git("commit", "-qam", "identity")
    return cfg


def test_a_pr_cannot_add_its_author_to_another_agents_list(repo):
    cfg = _identity_main(repo)
    repo.git("checkout", "-q", "-b", "attack")
    cfg.write_text(cfg.read_text().replace("['alice@example.com']", "['alice@example.com', 'mallory@evil.example']"))
    repo.git("add", ".handoffs/config.yaml")
    commit_as(repo, MALLORY, "me too")
    sent = repo.j("session", "new", "--agent", "alice", "--channel", "general", env=MALLORY)
    code, rep = verify(repo, "--base", "main")
    assert code == 5, rep
    errors = errors_of(rep)
    assert errors[sent["path"]] == {"identity_mismatch"}  # judged by main's list, not the branch's
    assert errors[".handoffs/config.yaml"] == {"identity_config_changed"}


def test_a_pr_cannot_switch_enforcement_off(repo):
    cfg = _identity_main(repo)
    repo.git("checkout", "-q", "-b", "attack")
    cfg.write_text(cfg.read_text() + "  enforce: false\n")
    repo.git("add", ".handoffs/config.yaml")
    commit_as(repo, MALLORY, "off")
    sent = repo.j("session", "new", "--agent", "alice", "--channel", "general", env=MALLORY)
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and rep["identity"] is True, rep
    assert errors_of(rep) == {sent["path"]: {"identity_mismatch"}, ".handoffs/config.yaml": {"identity_config_changed"}}


def test_an_identity_change_on_its_own_is_a_warning_to_review(repo):
    cfg = _identity_main(repo)
    repo.git("checkout", "-q", "-b", "onboard")
    cfg.write_text(cfg.read_text() + "    carol: ['carol@example.com']\n")
    repo.git("commit", "-qam", "carol joins")
    code, rep = verify(repo, "--base", "main")
    assert code == 0, rep
    assert [(f["severity"], f["code"]) for f in rep["findings"]] == [("warning", "identity_config_changed")]
    # once merged, carol's events are judged by it
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "onboard")
    repo.git("checkout", "-q", "-b", "carol")
    repo.j("session", "new", "--agent", "carol", "--channel", "general", env={"GIT_AUTHOR_EMAIL": "carol@example.com"})
    assert verify(repo, "--base", "main")[0] == 0


# ------------------------------------------------------------------ clocks


def test_backdated_event_is_flagged_like_a_future_one(repo):
    repo.session("alice", "general", sid="sess_alice")
    repo.git("checkout", "-q", "-b", "old")
    old = forge(repo, "session-open", "sess_old", "bob.sess_old", at_ms=opened_at(repo, "sess_alice") - 2 * DAY_MS,
                body={"agent": "bob", "channels": ["general"]}, author={})
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and errors_of(rep) == {old: {"clock_backdated"}}, rep
    # on a push (--against) only a warning: a squash merge dates its commit at merge time
    code, rep = verify(repo, "--against", "main")
    assert code == 0 and [(f["severity"], f["code"]) for f in rep["findings"]] == [("warning", "clock_backdated")]
    # a rebase keeps author times: events written and committed together pass after one
    repo.git("checkout", "-q", "main")
    repo.git("checkout", "-q", "-b", "fresh")
    repo.session("carol", "general")
    repo.git("checkout", "-q", "main")
    repo.session("dave", "general")
    repo.git("checkout", "-q", "fresh")
    repo.git("rebase", "-q", "main")
    assert verify(repo, "--base", "main")[0] == 0


# ------------------------------------------------------------------ force-push: --against REV


def test_force_push_that_drops_an_event_passes_base_and_fails_against(repo):
    repo.session("alice", "general", sid="sess_alice")
    before = repo.git("rev-parse", "HEAD").strip()
    dropped = repo.j("send", "--session", "sess_alice", "--channel", "general", "--text", "to be erased")
    before = repo.git("rev-parse", "HEAD").strip()
    repo.git("reset", "-q", "--hard", "HEAD~1")  # the "force-push": the new tip lost the commit
    repo.session("bob", "general")
    code, rep = verify(repo, "--base", before)
    assert code == 0, rep  # the merge base is an ancestor of the new tip: nothing looks removed
    code, rep = verify(repo, "--against", before)
    assert code == 5 and rep["exact"] is True
    assert errors_of(rep) == {dropped["paths"][0]: {"deleted"}}, rep
    human = repo.h("verify", "--against", before)
    assert human.code == 5 and f"{before[:12]}) itself" in human.out
    r = repo.h("verify", "--against", before, "--base", "main", "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "usage"


# ------------------------------------------------------------------ --format github


def test_github_annotations_carry_a_line_and_a_missing_base_is_an_error_line(repo):
    repo.session("alice", "general", sid="sess_alice")
    repo.git("checkout", "-q", "-b", "attack")
    forged = forged_open(repo, "sess_alice", "mallory", at_ms=opened_at(repo, "sess_alice") + 1000)
    gh = repo.h("verify", "--base", "main", "--format", "github")
    assert gh.code == 5
    assert f"::error file={forged},line=1,title=handoff verify%3A session_taken::" in gh.out
    missing = repo.h("verify", "--base", "origin/nope", "--format", "github")
    assert missing.code == 4
    assert missing.out.startswith("::error title=handoff verify%3A not_found::revision 'origin/nope'"), missing.out
    assert "Traceback" not in missing.err


def test_workflow_push_job_uses_against():
    wf = yaml.safe_load((ROOT / "examples" / "github-workflow.yml").read_text())
    runs = {s.get("name"): s.get("run", "") for s in wf["jobs"]["verify"]["steps"]}
    push = next(v for k, v in runs.items() if k and "push" in k)
    assert "--against" in push and "--base" not in push
    pr = next(v for k, v in runs.items() if k and "pull request" in k)
    assert "--base" in pr


def test_the_same_identity_opening_an_id_again_is_harmless(clones):
    a, b = clones("a"), clones("b")
    a.ok("init", "--workspace", "test")
    a.git("push", "-q", "origin", "main")
    b.git("pull", "-q", "origin", "main")
    a.session("ci", "general", sid="sess_ci")  # two clones, one fixed --id: two open events, one identity
    b.session("ci", "general", sid="sess_ci")
    a.git("push", "-q", "origin", "main")
    b.git("checkout", "-q", "-b", "ci-run")
    b.git("fetch", "-q", "origin")
    code, rep = verify(b, "--base", "origin/main")
    assert code == 0, rep
    b.git("merge", "-q", "--no-edit", "origin/main")
    code, rep = verify(b, "--base", "origin/main")
    assert code == 0 and rep["errors"] == 0, rep
    assert b.j("session", "status", "sess_ci")["state"] == "active"


def test_a_full_audit_has_no_base_to_judge_by(repo):
    _identity_main(repo)
    repo.j("session", "new", "--agent", "alice", "--channel", "general", env={"GIT_AUTHOR_EMAIL": "alice@example.com"})
    code, rep = verify(repo, "--all")
    assert code == 0 and rep["identity"] is True, rep  # the head's config judges; its "change" is a warning
    assert {f["code"] for f in rep["findings"]} == {"identity_config_changed"}


def test_a_hostile_open_fetched_from_another_branch_does_not_hijack_the_owner(clones):
    owner, attacker = clones("owner"), clones("attacker")
    mine = owner.session("alice", "general", sid="sess_alice")
    owner.git("push", "-q", "origin", "main")
    attacker.git("pull", "-q", "origin", "main")
    attacker.git("checkout", "-q", "-b", "attack")
    forged = forged_open(attacker, "sess_alice", "mallory", at_ms=opened_at(attacker, "sess_alice") - 2 * DAY_MS)
    attacker.git("push", "-q", "origin", "attack")

    owner.ok("sync", "--no-push")  # fetch: the attack branch's events are now visible here (remote refs)
    listed = {s["session_id"]: s for s in owner.j("session", "list")["sessions"]}
    # a remote ref's open never takes over an id this branch opens, whatever its clock: the list, the status
    # and the writes all stay the owner's, and the forged open is a diagnostic
    assert listed["sess_alice"]["peer_id"] == mine["peer_id"]
    assert owner.j("session", "status", "sess_alice")["peer_id"] == mine["peer_id"]
    from handoff.app.workspace import Workspace
    diags = Workspace(owner.path).state()["diagnostics"]
    assert any(d["reason_code"] == "session_taken" and d["path"].endswith(forged.rsplit("/", 1)[-1])
               for d in diags), diags
    from support.hostile import assert_index_agrees
    assert_index_agrees(owner.path)
    owner.git("checkout", "-q", "-b", "feature")
    sent = owner.j("send", "--session", "sess_alice", "--channel", "general", "--text", "still me")
    assert codec.load((owner.path / sent["paths"][0]).read_bytes())["from"] == mine["peer_id"]
    owner.ok("session", "close", "sess_alice")  # written as the owner's peer too
    code, rep = verify(owner, "--base", "origin/main")
    assert code == 0 and rep["findings"] == [], rep  # the owner's branch is not blamed for the attack
    # and the attack branch fails its own review
    attacker.git("fetch", "-q", "origin")
    code, rep = verify(attacker, "--base", "origin/main")
    assert code == 5 and errors_of(rep) == {forged: {"session_taken", "clock_backdated"}}, rep


def test_an_id_opened_differently_on_another_branch_is_a_warning(clones):
    a, b = clones("a"), clones("b")
    a.git("checkout", "-q", "-b", "one")
    a.session("alice", "general", sid="sess_shared")
    a.git("push", "-q", "origin", "one")
    b.git("checkout", "-q", "-b", "two")
    opened = b.session("bob", "general", sid="sess_shared")  # b has not fetched yet: no write-time refusal
    b.git("fetch", "-q", "origin")
    code, rep = verify(b, "--base", "origin/main")
    assert code == 0, rep
    assert [(f["severity"], f["path"], f["code"]) for f in rep["findings"]] == [
        ("warning", path_of(b, opened["event_id"]), "session_elsewhere")]
