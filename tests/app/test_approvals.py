"""A person's checkpoints (core/approvals.py) through the real CLI in real repos: gates at the request
and mid-way, approve/deny by approvers only, never by an agent session, the index equal to a full
reduce with the config's policy, and approve vs deny on two clones merging to one state."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import ROOT

from handoff import index
from handoff.app.workspace import Workspace
from handoff.core import approvals, checks, reducer

APPROVERS = """
approvals:
  approvers: ['lead@example.com', 'alice']
  require:
  - channel: 'deploys'
"""


def _configure(repo, text: str = APPROVERS) -> None:
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text() + text)
    repo.git("add", ".handoffs/config.yaml")
    repo.git("commit", "-qm", "approvals policy")


def _two(repo, channel: str = "dev"):
    repo.session("lead", channel, "sess_a")
    repo.session("deployer", channel, "sess_b")


def _work(repo, wid: str) -> dict:
    return repo.j("work", "lookup", wid)


def _full_reduce(path) -> dict:
    ws = Workspace(path)
    return reducer.reduce(index.read_all_records(ws), checks.admins_of(ws.config), approvals.policy_of(ws.config))


def _assert_index_equal(path) -> dict:
    got, want = Workspace(path).state(refresh=True).materialize(), _full_reduce(path)
    for key in ("work", "diagnostics", "counters", "messages", "sessions"):
        assert json.dumps(got[key], sort_keys=True, default=str) == json.dumps(want[key], sort_keys=True, default=str), key
    return want


def test_request_gate_holds_accept_until_a_person_approves(repo):
    _two(repo)
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "deploy v2", "--work", "work_dep",
            "--approval-by", "lead@example.com")
    r = repo.h("accept", "work_dep", "-s", "sess_b", "-o", "json")
    assert r.code == 3 and r.json["error"]["reason_code"] == "awaiting_approval"
    assert "handoff approve work_dep" in r.json["error"]["hint"]
    w = _work(repo, "work_dep")
    assert w["gate"]["state"] == "awaiting_approval" and w["gate"]["approver"] == "lead@example.com"
    assert w["waiting_on"] == "person"
    pending = repo.j("list", "--pending-approval")["handoffs"]
    assert [p["handoff_id"] for p in pending] == ["work_dep"] and pending[0]["approvers"] == ["lead@example.com"]
    assert repo.j("status")["awaiting_approval"] == 1
    # an agent session never approves; nor does a person who is not the gate's approver
    r = repo.h("approve", "work_dep", "-o", "json", env={"HANDOFF_SESSION": "sess_b"})
    assert r.code == 3 and r.json["error"]["reason_code"] == "not_approver"
    r = repo.h("approve", "work_dep", "-o", "json")  # the commit author here is author@example.com
    assert r.code == 3 and r.json["error"]["reason_code"] == "not_approver"
    assert "lead@example.com" in r.json["error"]["hint"]
    out = repo.j("approve", "work_dep", "--reason", "plan checked", env={"GIT_AUTHOR_EMAIL": "lead@example.com"})
    assert out["decision"] == "approved" and out["by"] == "lead@example.com" and out["committed"]
    assert out["work"]["gate"]["state"] == "approved"
    assert repo.git("log", "-1", "--format=%ae").strip() == "lead@example.com"
    repo.ok("accept", "work_dep", "-s", "sess_b")
    assert repo.j("list", "--pending-approval")["handoffs"] == []
    r = repo.h("approve", "work_dep", "-o", "json", env={"GIT_AUTHOR_EMAIL": "lead@example.com"})
    assert r.code == 3 and r.json["error"]["reason_code"] == "no_open_gate"
    assert "already approved" in r.json["error"]["message"]
    _assert_index_equal(repo.path)


def test_config_rule_gate_and_deny_fails_the_work(repo):
    _configure(repo)
    _two(repo, "deploys")
    r = repo.h("request", "-s", "sess_a", "--to", "deployer", "-c", "deploys", "-d", "x", "--approval-by", "mallory@x.org")
    assert r.code == 3  # an approver the config does not list
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "deploys", "-d", "ship it", "--work", "work_ship")
    assert _work(repo, "work_ship")["gate"]["state"] == "awaiting_approval"
    r = repo.h("accept", "work_ship", "-s", "sess_b")
    assert r.code == 3
    r = repo.h("deny", "work_ship", "--as", "alice")  # deny needs --reason
    assert r.code == 2
    out = repo.j("deny", "work_ship", "--as", "alice", "--reason", "code freeze")
    assert out["work"]["state"] == "failed" and out["work"]["terminal_reason"] == "denied"
    w = _work(repo, "work_ship")
    assert w["gate"]["state"] == "denied" and w["gate"]["decided_by"] == "alice" and w["gate"]["reason"] == "code freeze"
    r = repo.h("wait", "work_ship", "--timeout", "1", "-o", "json")
    assert r.code == 6 and r.json["wait_result"] == "failed"
    _assert_index_equal(repo.path)


def test_progress_gate_holds_the_worker_mid_way(repo):
    _configure(repo)
    _two(repo)
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "migrate", "--work", "work_mig")
    assert _work(repo, "work_mig")["gate"] is None  # (no rule for #dev)
    repo.ok("accept", "work_mig", "-s", "sess_b")
    r = repo.h("progress", "work_mig", "-s", "sess_b", "--gate", "deploy", "--approval-by", "alice", "-m", "staging ok")
    assert r.code == 0, r.err
    for verb in ("progress", "complete"):
        r = repo.h(verb, "work_mig", "-s", "sess_b", "-o", "json")
        assert r.code == 3 and r.json["error"]["reason_code"] == "awaiting_approval", verb
    r = repo.h("wait", "work_mig", "--timeout", "0.2", "--until-input", "-o", "json")
    assert r.code == 9 and r.json["wait_result"] == "awaiting_approval", r.out
    assert repo.h("wait", "work_mig", "--timeout", "0.2", "--until-approved").code == 124
    r = repo.h("approve", "work_mig", "--as", "lead@example.com", "-o", "json")  # the gate names alice
    assert r.code == 3 and r.json["error"]["reason_code"] == "not_approver"
    worker = subprocess.Popen([sys.executable, "-m", "handoff", "wait", "work_mig", "--until-approved", "--timeout",
                               "60", "-o", "json"], cwd=repo.path, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    time.sleep(1.0)  # (not a timing assertion: the worker blocks either way, this only lets it start first)
    repo.ok("approve", "work_mig", "--as", "alice")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0 and json.loads(out)["wait_result"] == "approved"
    repo.ok("complete", "work_mig", "-s", "sess_b")
    w = _work(repo, "work_mig")
    assert w["state"] == "completed" and w["gate"]["name"] == "deploy" and w["gate"]["state"] == "approved"
    _assert_index_equal(repo.path)


def test_reader_ignores_a_hand_written_approval_by_a_non_approver(repo):
    _configure(repo)
    _two(repo)
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "d", "--work", "work_h",
            "--approval-by", "alice")
    ws = Workspace(repo.path)
    gate = ws.state()["work"]["work_h"]["gate"]
    forged = {"kind": "approval", "from": "deployer.sess_b", "work_id": "work_h",
              "body": {"decision": "approved", "for_id": gate["opened_by"], "gate": "accept", "by": "deployer"}}
    ws.write(lambda st: [dict(forged)])
    state = _assert_index_equal(repo.path)
    assert state["work"]["work_h"]["gate"]["state"] == "awaiting_approval"
    assert any(d["reason_code"] == "not_approver" for d in state["diagnostics"])
    assert repo.h("accept", "work_h", "-s", "sess_b").code == 3


def test_changing_the_approvers_refolds_the_index(repo):
    _two(repo)
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "d", "--work", "work_c",
            "--approval-by", "bob@example.com")
    repo.ok("approve", "work_c", "--as", "bob@example.com")
    assert _work(repo, "work_c")["gate"]["state"] == "approved"
    _configure(repo)  # bob is not among the approvers now: his approval no longer counts
    assert _work(repo, "work_c")["gate"]["state"] == "awaiting_approval"
    _assert_index_equal(repo.path)


def test_approve_and_deny_on_two_clones_merge_to_one_state(clones):
    a = clones("a")
    b = clones("b")
    _configure(a)
    _two(a)
    a.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "go", "--work", "work_r",
         "--approval-by", "alice")
    a.git("push", "-q", "origin", "main")
    b.git("pull", "-q", "--no-rebase", "origin", "main")
    a.ok("approve", "work_r", "--as", "alice")
    b.ok("deny", "work_r", "--as", "alice", "--reason", "no")  # (written later: sorts after the approval)
    a.git("push", "-q", "origin", "main")
    b.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    b.git("push", "-q", "origin", "main")
    a.git("pull", "-q", "--no-rebase", "origin", "main")
    sa, sb = _assert_index_equal(a.path), _assert_index_equal(b.path)
    assert json.dumps(sa["work"], sort_keys=True) == json.dumps(sb["work"], sort_keys=True)
    w = sa["work"]["work_r"]
    assert w["gate"]["state"] == "approved" and w["state"] == "submitted"  # the earlier decision wins
    assert [d["reason_code"] for d in w["diagnostics"]] == ["gate_decided"]
    a.ok("accept", "work_r", "-s", "sess_b")


def test_verify_refuses_an_approval_committed_by_someone_not_an_approver(repo):
    _configure(repo)
    _two(repo)
    for wid in ("work_v1", "work_v2"):
        repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "d", "--work", wid)
        repo.ok("progress", wid, "-s", "sess_b", "--gate", "deploy")
    repo.git("checkout", "-q", "-b", "feature")
    # the approver's own commit passes
    repo.ok("approve", "work_v1", env={"GIT_AUTHOR_EMAIL": "lead@example.com"})
    r = repo.h("verify", "--base", "main", "-o", "json")
    assert r.code == 0, r.out
    # --as names an approver, but the commit's author (author@example.com, an agent's shell) is not one
    repo.ok("approve", "work_v2", "--as", "alice")
    r = repo.h("verify", "--base", "main", "-o", "json")
    assert r.code == 5 and r.json["error"]["reason_code"] == "verification_failed"
    bad = [f for f in r.json["findings"] if f["code"] == "approval_not_by_approver"]
    assert len(bad) == 1 and "author@example.com" in bad[0]["message"] and ".approval.person.alice." in bad[0]["path"]


def test_verify_refuses_new_approvers_beside_approvals(repo):
    _configure(repo)
    _two(repo, "deploys")
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "deploys", "-d", "d", "--work", "work_x")
    repo.git("checkout", "-q", "-b", "feature")
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("approvers: ['lead@example.com', 'alice']",
                                           "approvers: ['lead@example.com', 'alice', 'author@example.com']"))
    repo.git("commit", "-qam", "me too")
    repo.ok("approve", "work_x", "--as", "author@example.com")
    r = repo.h("verify", "--base", "main", "-o", "json")
    assert r.code == 5
    codes = {f["code"] for f in r.json["findings"] if f["severity"] == "error"}
    # judged by main's approvers: the config change itself, the commit's author, and the reader ignoring it
    assert codes == {"identity_config_changed", "approval_not_by_approver", "not_approver"}


def test_gates_show_in_brief_inbox_metrics_log_report_and_mcp(repo):
    from handoff.faces.mcp import Tools
    _two(repo)
    repo.git("checkout", "-q", "-b", "feature")
    at = {"HANDOFF_NOW": "2026-05-02T10:00:00Z"}
    repo.ok("request", "-s", "sess_a", "--to", "deployer", "-c", "dev", "-d", "deploy", "--work", "work_s",
            "--approval-by", "alice", env=at)
    for sid, section in (("sess_b", "handoffs_to_me"), ("sess_a", "handoffs_from_me")):
        row = repo.j("brief", "-s", sid)[section][0]
        assert row["awaiting_approval"]["gate"] == "accept" and row["awaiting_approval"]["approver"] == "alice"
        assert row["do"][0].startswith("handoff wait work_s --until-approved")
        assert "agents cannot" in repo.ok("brief", "-s", sid).out
        gated = repo.j("inbox", "-s", sid)["awaiting_approval"]
        assert [(g["work_id"], g["role"]) for g in gated] == [("work_s", "target" if sid == "sess_b" else "initiator")]
    tools = Tools(str(repo.path))
    listed = json.loads(tools.call("list", pending_approval=True))["handoffs"]
    assert [h["handoff_id"] for h in listed] == ["work_s"] and listed[0]["approvers"] == ["alice"]
    assert json.loads(tools.call("wait", handoff_id="work_s", timeout=0))["wait_result"] == "awaiting_approval"
    assert not hasattr(tools, "approve") and not hasattr(tools, "deny")  # agents never decide
    repo.ok("approve", "work_s", "--as", "alice", env={"HANDOFF_NOW": "2026-05-02T10:02:30Z"})
    pair = repo.j("metrics")["pairs"][0]
    assert pair["gated"] == 1 and pair["median_approval_wait_ms"] == 150_000
    names = [e["event"] for e in repo.j("log", "--work", "work_s")["entries"]]
    assert names == ["agent.handoff.requested", "work.approval.approved"]
    rep = repo.j("report", "--base", "main")
    assert rep["approvals"]["decided"] == [{"work_id": "work_s", "gate": "accept", "decision": "approved",
                                            "by": "alice", "at": "2026-05-02T10:02:30.000Z", "reason": None}]
    assert "Person checkpoints" in repo.ok("report", "--base", "main", "--markdown").out


def test_python_api_approve_and_deny(repo):
    from handoff import Handoff, HandoffError
    hf = Handoff(repo.path)
    lead, worker = hf.open_session("lead", ["dev"]), hf.open_session("deployer", ["dev"])
    h = lead.request("deployer", "dev", "deploy", approval_by="alice")
    assert h["gate"]["state"] == "awaiting_approval"
    assert [p["handoff_id"] for p in hf.pending_approvals()] == [h["handoff_id"]]
    try:
        worker.accept(h["handoff_id"])
    except HandoffError as err:
        assert err.reason_code == "awaiting_approval" and err.exit_code == 3
    else:
        raise AssertionError("accepted behind a gate")
    assert hf.approve(h["handoff_id"], by="alice", reason="fine")["work"]["gate"]["state"] == "approved"
    worker.accept(h["handoff_id"])
    worker.progress(h["handoff_id"], "ready", gate="prod", approval_by="alice")
    assert hf.wait(h["handoff_id"], 0, until_input=True)["wait_result"] == "awaiting_approval"
    out = hf.deny(h["handoff_id"], by="alice", reason="not today")
    assert out["work"]["state"] == "failed" and out["work"]["terminal_reason"] == "denied"
    assert [(g["name"], g["state"]) for g in hf.state()["work"][h["handoff_id"]]["gates"]] == \
        [("accept", "approved"), ("prod", "denied")]
