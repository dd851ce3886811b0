"""Convergence as a stateful property: clones that hold the same files hold byte-identical state.

Three clones of one bare remote perform random sends, handoff requests,
lifecycle moves, unrelated commits by a person, pulls (merges), pushes and
direct merges between clones.  After every step: pulls never conflict, and
any two clones whose event files are identical reduce them to identical
JSON.  (Claims and leases live on another branch; they join this machine
when it lands.)
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import Repo, make_repo
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from support.reliability import scale

pytestmark = pytest.mark.slow  # scaled up with HANDOFF_HEAVY=1

N = 3
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda t: t.strip())


def _git(cwd, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


class Clones(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="handoff-conv-"))
        seed = make_repo(self.tmp / "seed")
        _git(self.tmp, "clone", "-q", "--bare", str(seed.path), str(self.tmp / "remote.git"))
        self.repos: list[Repo] = []
        self.peers: list[str] = []
        for i in range(N):
            _git(self.tmp, "clone", "-q", str(self.tmp / "remote.git"), str(self.tmp / f"c{i}"))
            r = Repo(self.tmp / f"c{i}")
            s = r.j("session", "new", "--agent", f"agent{i}", "--channel", "general", "--id", f"sess_c{i}")
            self.repos.append(r)
            self.peers.append(s["peer_id"])
        self.steps = {"send": 0, "request": 0, "move": 0, "refused": 0, "person": 0, "pull": 0, "push": 0,
                      "merge": 0, "identical_pairs": 0}

    def teardown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ rules
    @initialize(text=TEXTS)
    def a_handoff_everyone_knows(self, text):
        """Start from a shared history: one open handoff, every clone synced."""
        self.request(0, 1, text, False)
        for i in list(range(N)) + [0, 1]:
            self.push(i)

    @rule(i=st.integers(0, N - 1), text=TEXTS, thread=st.sampled_from(["thread_alpha", "thread_beta"]))
    def send(self, i, text, thread):
        self.repos[i].ok("send", "--session", f"sess_c{i}", "--channel", "general", "--thread", thread,
                         "--text", text)
        self.steps["send"] += 1

    @rule(i=st.integers(0, N - 1), j=st.integers(0, N - 1), text=TEXTS, direct=st.booleans())
    def request(self, i, j, text, direct):
        if i == j:
            return
        args = ["request", "--session", f"sess_c{i}", "--to", self.peers[j], "--channel", "general", "-d", text]
        self.repos[i].ok(*args, *(["--direct"] if direct else []))
        self.steps["request"] += 1

    @rule(i=st.integers(0, N - 1), pick=st.integers(0, 1000), v=st.integers(0, 1000))
    def move(self, i, pick, v):
        for k in range(N):  # the first clone, from i on, that takes part in some work
            idx = (i + k) % N
            work = sorted((w for w in self.repos[idx].j("work", "list")["work"]
                           if self.peers[idx] in (w.get("opened_by_peer_id"), w.get("target_peer_id"))),
                          key=lambda w: w["work_id"])
            if work:
                i = idx
                break
        else:
            return
        w = work[pick % len(work)]
        if w["target_peer_id"] == self.peers[i]:
            verbs = ["accept", "accept", "reject", "progress", "need-input", "complete", "fail", "cancel", "reply"]
        else:
            verbs = ["cancel", "reply", "reply"]
        verb = verbs[v % len(verbs)]
        extra = {"reject": ["--reason", "busy"], "reply": ["-m", "more detail"], "progress": ["-m", "half way"]}
        r = self.repos[i].h(verb, w["work_id"], "--session", f"sess_c{i}", *extra.get(verb, []), "-o", "json")
        assert r.code in (0, 3), f"{verb}: {r.out} {r.err}"  # a protocol refusal is fine; anything else is not
        self.steps["move" if r.code == 0 else "refused"] += 1

    @rule(i=st.integers(0, N - 1), n=st.integers(0, 10 ** 6))
    def person_commits(self, i, n):
        p = self.repos[i].path / "src" / f"file{n}.txt"
        p.parent.mkdir(exist_ok=True)
        p.write_text(f"{n} {self.steps['person']}\n")  # (never the same bytes twice: git would have nothing to commit)
        _git(p.parent, "add", str(p))
        _git(p.parent, "commit", "-q", "-m", f"person {n}")
        self.steps["person"] += 1

    @rule(i=st.integers(0, N - 1))
    def pull(self, i):
        proc = _git(self.repos[i].path, "pull", "-q", "--no-rebase", "--no-edit", check=False)
        assert proc.returncode == 0 and "CONFLICT" not in proc.stdout, proc.stdout + proc.stderr
        self.steps["pull"] += 1

    @rule(i=st.integers(0, N - 1))
    def push(self, i):
        self.pull(i)
        _git(self.repos[i].path, "push", "-q", "origin", "HEAD")
        self.steps["push"] += 1

    @rule(i=st.integers(0, N - 1), j=st.integers(0, N - 1))
    def merge_from_clone(self, i, j):
        if i == j:
            return
        proc = _git(self.repos[i].path, "pull", "-q", "--no-rebase", "--no-edit", str(self.repos[j].path), "HEAD",
                    check=False)
        assert proc.returncode == 0 and "CONFLICT" not in proc.stdout, proc.stdout + proc.stderr
        self.steps["merge"] += 1

    # ------------------------------------------------------------- invariants
    @invariant()
    def same_files_same_state(self):
        if not self.repos:
            return
        from handoff.app.workspace import Workspace
        seen: dict[str, str] = {}
        for r in self.repos:
            digest = hashlib.sha256()
            for p in sorted((r.path / ".handoffs" / "events").rglob("*.yaml")):
                digest.update(str(p.relative_to(r.path)).encode() + b"\0" + p.read_bytes() + b"\0")
            key = digest.hexdigest()
            state = Workspace(r.path).state()
            rendered = json.dumps(state, sort_keys=True, ensure_ascii=False)
            if key in seen:
                assert seen[key] == rendered, "two clones with the same files reduced them differently"
                self.steps["identical_pairs"] += 1
            seen[key] = rendered
            # and the command line prints the same bytes
        texts = {}
        for r in self.repos:
            digest = hashlib.sha256(b"".join(sorted(p.read_bytes() for p in (r.path / ".handoffs" / "events")
                                                    .rglob("*.yaml")))).hexdigest()
            out = r.ok("threads", "list", "--channel", "general", "-o", "json").out
            if digest in texts:
                assert texts[digest] == out
            texts[digest] = out


def test_clones_converge():
    totals = {}

    class Counted(Clones):
        def teardown(self):
            for k, v in self.steps.items():
                totals[k] = totals.get(k, 0) + v
            super().teardown()

    run_state_machine_as_test(Counted, settings=settings(
        max_examples=scale(3, 60), stateful_step_count=scale(25, 60), deadline=None,
        suppress_health_check=list(HealthCheck)))
    print(f"\nconvergence: {totals}")
    assert totals.get("identical_pairs", 0) > 0
