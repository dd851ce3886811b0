"""Property: approvals, denials and gated moves written at random on 2-3 real git branches (each its
own clone and clock), merged in different orders, reduce to one state; every gate has at most one
applied decision, the first in event order; and the index equals a full reduce with the policy.

In the style of test_lifecycle_property.py: events are written with ``Workspace.write`` and the same
``work_ops`` rules the CLI runs, one real commit per write.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import make_repo
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.lifecycle import isolated_env

from handoff import index
from handoff.app.workspace import Workspace
from handoff.core import approvals, checks, reducer, session_ops, work_ops
from handoff.errors import HandoffError
from handoff.store import clock

SESSIONS = [("alpha", "sess_a"), ("beta", "sess_b")]
WORK = ["work_g1", "work_g2", "work_g3"]
PEOPLE = ["alice", "bob", "mallory"]  # mallory is no approver
VERBS = ["approve", "approve", "deny", "deny", "accept", "gate", "complete", "cancel"]
POLICY = "\napprovals:\n  approvers: ['alice', 'bob']\n  require:\n  - channel: 'dev'\n"


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _pinned(minute: int, second: int = 0):
    os.environ["HANDOFF_NOW"] = f"2026-05-02T09:{minute:02d}:{second:02d}Z"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """main: the policy, two sessions and three work units waiting for a person."""
    with isolated_env(tmp_path_factory):
        try:
            repo = make_repo(tmp_path_factory.mktemp("gates") / "base")
            cfg = repo.path / ".handoffs" / "config.yaml"
            cfg.write_text(cfg.read_text() + POLICY)
            repo.git("add", ".handoffs/config.yaml")
            repo.git("commit", "-qm", "policy")
            ws = Workspace(repo.path)
            _pinned(0)
            for agent, sid in SESSIONS:
                ws.write(lambda st, a=agent, s=sid: session_ops.session_open(st, agent=a, channels=["dev"], name=None,
                                                                     session_id=s, workspace=None), commit=True)
            pol = approvals.policy_of(ws.config)
            for i, wid in enumerate(WORK):
                _pinned(1 + i)
                ws.write(lambda st, w=wid: work_ops.request(
                    st, session_ops.session_for(st, "sess_a"), workspace_id=ws.workspace_id, now_ms=0,
                    to="beta.sess_b", channel="dev", description=f"do {w}", context=None, work=w, deadline=None,
                    thread=None, direct=False, given_id=None, fresh=clock.new_ulid(), policy=pol), commit=True)
        finally:
            os.environ.pop("HANDOFF_NOW", None)
        return repo.path


def _build(verb: str, wid: str, who: str, pol: dict):
    def build(state):
        if verb in ("approve", "deny"):
            return work_ops.decide(state, wid, "approved" if verb == "approve" else "denied", by=who,
                                   reason="why not" if verb == "deny" else None, policy=pol)
        s = session_ops.session_for(state, "sess_b" if verb != "cancel" else "sess_a")
        if verb == "accept":
            return work_ops.accept(state, s, wid)
        if verb == "gate":
            return work_ops.trace(state, s, wid, "working", gate="deploy", policy=pol)
        if verb == "complete":
            return work_ops.trace(state, s, wid, "completed", message="done")
        return work_ops.cancel(state, s, wid, message="stop")
    return build


def _full(path: Path) -> dict:
    ws = Workspace(path)
    return reducer.reduce(index.read_all_records(ws), checks.admins_of(ws.config), approvals.policy_of(ws.config))


def _canon(state) -> str:
    if hasattr(state, "materialize"):
        state = state.materialize()
    return json.dumps({k: state[k] for k in ("work", "diagnostics", "counters", "event_count")}, sort_keys=True)


def _one_decision_per_gate(state: dict) -> None:
    for w in state["work"].values():
        applied = [h for h in w["history"] if h["kind"] == "approval" and h["refused"] is None]
        opened = [g["opened_by"] for g in w["gates"]]
        assert len(applied) <= len(opened), w["work_id"]
        for g in w["gates"]:
            assert (g["state"] == "awaiting_approval") == (g["decision_id"] is None)
        if w["terminal_reason"] == "denied":
            assert w["gate"]["state"] == "denied" and w["state"] == "failed"


op_strategy = st.tuples(st.integers(0, 2), st.sampled_from(VERBS), st.sampled_from([0, 0, 1, 2]), st.sampled_from(PEOPLE),
                        st.integers(10, 59))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_branches=st.integers(2, 3), moves=st.lists(op_strategy, min_size=4, max_size=10), data=st.data())
def test_racing_decisions_on_branches_converge(base, n_branches, moves, data):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(n_branches):
            _git(tmp, "clone", "-q", str(base), f"b{i}")
        written = 0
        try:
            for bi, verb, wi, who, minute in moves:
                ws = Workspace(tmp / f"b{bi % n_branches}")
                pol = approvals.policy_of(ws.config)
                _pinned(minute, bi % n_branches)
                try:
                    result = ws.write(_build(verb, WORK[wi], who, pol), commit=True)
                except HandoffError as err:
                    assert err.exit_code in (2, 3), (verb, err.reason_code, err.message)
                    assert err.reason_code != "not_approver" or who == "mallory"
                else:
                    assert result.committed
                    assert who != "mallory" or verb not in ("approve", "deny"), "a non-approver decided"
                    written += len(result.events)
                _one_decision_per_gate(ws.state(refresh=True))
        finally:
            os.environ.pop("HANDOFF_NOW", None)
        order = data.draw(st.permutations(range(n_branches)), label="merge order")
        finals = []
        for k, seq in enumerate([order, order[::-1]]):
            dest = tmp / f"merge{k}"
            _git(tmp, "clone", "-q", str(base), dest.name)
            for bi in seq:
                _git(dest, "pull", "-q", "--no-rebase", "--no-edit", str(tmp / f"b{bi}"), "main")
            got = Workspace(dest).state(refresh=True)
            assert _canon(got) == _canon(_full(dest)), "the index differs from a full reduce"
            _one_decision_per_gate(got)
            finals.append(_canon(got))
        assert finals[0] == finals[1], "merge orders disagree"
        final = json.loads(finals[0])
        assert final["event_count"] == 2 + 3 + written
        raced = sum(d["reason_code"] == "gate_decided" for d in final["diagnostics"])
        event(f"decisions that lost a race: {'2+' if raced >= 2 else raced}")
