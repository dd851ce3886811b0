"""Issue 14: one hostile file, one pushed branch -- no command raises, nothing reviewed is rewritten.

Every test drives the real CLI (in-process ``main``, which re-raises anything unexpected, or a real
process for ``watch``) against real repositories: files committed by another author, branches pushed
to a real bare remote and fetched with plain ``git fetch``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import Repo, git, make_repo
from support import hostile
from support.hostile import run_everything
from support.watchproc import WatchProc

MALLORY = {"GIT_AUTHOR_NAME": "Mallory", "GIT_AUTHOR_EMAIL": "mallory@example.com",
           "GIT_COMMITTER_NAME": "Mallory", "GIT_COMMITTER_EMAIL": "mallory@example.com"}

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    cwd = os.getcwd()
    repo = make_repo(tmp_path_factory.mktemp("schema-base") / "repo")
    facts = hostile.conversation(repo)
    os.chdir(cwd)
    return repo, facts, hostile.templates(repo)


def _copy(repo: Repo, dest: Path) -> Repo:
    shutil.copytree(repo.path, dest, symlinks=True)
    return Repo(dest)


def _commit_as_mallory(path: Path, message: str) -> None:
    git(path, "add", "-A", "--", ".")
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", message], cwd=path, check=True,
                   env=dict(os.environ, **MALLORY))


def _template(templates: list[dict], kind: str, **match) -> dict:
    return next(t for t in templates if t["kind"] == kind and all(t.get(k) == v for k, v in match.items()))


def _diag_paths(repo: Repo) -> set[str]:
    from handoff.app.workspace import Workspace
    return {d["path"] for d in Workspace(repo.path).state()["diagnostics"]}


def _legit_unchanged(repo: Repo, facts: dict) -> None:
    got = {e["id"] for e in repo.j("inbox", "--session", "sess_bob", "--all")["entries"]}
    assert {e["id"] for e in facts["inbox_bob"]["entries"]} <= got
    assert repo.j("work", "status", "--work", "work_review")["state"] == facts["work"]["state"] == "completed"


# ------------------------------------------------------------------ the issue's own cases, one file each

def _case(templates, name):
    say = _template(templates, "say", surface="thread")
    cases = {
        "protocol_list": dict(say, protocol=[]),
        "work_id_mapping": dict(_template(templates, "trace"), work_id={"a": 1}),
        "session_mapping_for_string": dict(_template(templates, "session-open"),
                                           body={"agent": {"name": "bob"}, "channels": ["general"]}),
        "session_id_mapping": dict(_template(templates, "session-close"), session_id={"x": 1}),
        "greet_capability_string": dict(_template(templates, "greet"), body={"capability": "x"}),
        "deadline_out_of_range": dict(say, deadline_at="99999999999999999"),
        "expires_out_of_range": dict(say, expires_at=99999999999999999),
        "lease_until_out_of_range": dict(_template(templates, "claim"),
                                         body={"lease_until": "99999999999999999", "lease_seconds": 60}),
        "lease_seconds_huge": dict(_template(templates, "claim"),
                                   body={"lease_until": "2026-12-07T09:24:50.019Z", "lease_seconds": 10 ** 30}),
        "ts_not_a_date": dict(say, ts="2026-13-45T99:99:99Z"),
        "hlc_newline": dict(say, hlc=say["hlc"] + "\n"),
        "thread_id_newline": dict(say, thread_id=say["thread_id"] + "\n"),
        "context_files_not_a_list": dict(_template(templates, "say", surface="thread", work_id="work_review"),
                                         body={"text": "x", "context": {"files_changed": {"a": 1}}}),
        "channel_on_a_lease": dict(_template(templates, "release"), channel="general"),
        "body_text_list": dict(say, body={"text": ["a"]}),
        "after_mapping": dict(say, after={"a": 1}),
    }
    ev = dict(cases[name], id=hostile.fresh_id(cases[name]))
    return cases[name], ev


ISSUE_CASES = ["protocol_list", "work_id_mapping", "session_mapping_for_string", "session_id_mapping",
               "greet_capability_string", "deadline_out_of_range", "expires_out_of_range",
               "lease_until_out_of_range", "lease_seconds_huge", "ts_not_a_date", "hlc_newline",
               "thread_id_newline", "context_files_not_a_list", "channel_on_a_lease", "body_text_list",
               "after_mapping"]


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_one_wrong_type_is_one_diagnostic(case, base, tmp_path):
    """The file is named by one diagnostic, every command still answers, verify fails on it, and the
    legitimate conversation reads exactly as before."""
    repo0, facts, templates = base
    repo = _copy(repo0, tmp_path / "repo")
    template, ev = _case(templates, case)
    rel = hostile.write(repo.path, hostile.path_for(template, ev), hostile.dump(ev))
    _commit_as_mallory(repo.path, f"hostile: {case}")
    run_everything(repo)
    assert rel[len(".handoffs/"):] in _diag_paths(repo)
    _legit_unchanged(repo, facts)
    r = repo.h("verify", "--all", "-o", "json")
    assert r.code == 5, r.out
    assert rel in {f["path"] for f in r.json["findings"] if f["severity"] == "error"}


def test_the_cli_refuses_what_a_reader_would_flag(repo):
    """A greet whose capability is a string was written, then crashed `log`: now the write is refused."""
    repo.session("alice", "general", sid="sess_alice")
    r = repo.h("send", "--session", "sess_alice", "--channel", "general", "--kind", "greet",
               "--body", '{"capability": "x"}', "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "invalid_body", r.out
    assert "body.capability" in r.json["error"]["message"]
    r = repo.h("send", "--session", "sess_alice", "--channel", "general", "--kind", "greet",
               "--body", '{"capability": "x"}')
    assert r.code == 2 and "Traceback" not in r.err and "capability" in r.err
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--kind", "greet",
            "--body", '{"capability": {"id": "cap_x", "summary": "does x", "outcome": "x done"}}')
    assert repo.j("log")["count"] >= 2


# ------------------------------------------------------------------------------- the whole corpus

def test_generated_corpus_every_command(base, tmp_path):
    """Every variant of every kind of event (thousands of files) in one repo: every command answers,
    every variant the schema refuses is a diagnostic, the conversation reads as before."""
    repo0, facts, templates = base
    repo = _copy(repo0, tmp_path / "repo")
    from handoff.core import reducer
    refused, total = set(), 0
    for t in templates:
        for label, ev in hostile.variants(t):
            rel = hostile.path_for(t, ev)
            data = hostile.dump(ev)
            hostile.write(repo.path, rel, data)
            total += 1
            if "error" in reducer.decode(rel[len(".handoffs/"):], data):
                refused.add(rel[len(".handoffs/"):])
    _commit_as_mallory(repo.path, "hostile: the generated corpus")
    assert total > 5000 and len(refused) > total / 2, (total, len(refused))
    codes = run_everything(repo, outputs=(("-o", "json"),))
    assert codes["status -o json"] == 0
    assert refused <= _diag_paths(repo)
    _legit_unchanged(repo, facts)
    assert repo.h("verify", "--all", "-o", "json").code == 5
    print(f"\ngenerated corpus: {total} variants, {len(refused)} refused by the schema")


# ------------------------------------------------------------------------------- remote branches

def _pair(clones) -> tuple[Repo, Repo, dict]:
    """``main`` (a completed handoff, pushed) and ``evil`` (a clone of it); returns the completion event."""
    main = clones("main")
    main.ok("init", "--workspace", "w")
    main.session("alice", sid="sess_alice")
    main.session("bob", sid="sess_bob")
    main.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "--work", "work_review",
           "-d", "do it")
    main.ok("accept", "work_review", "--session", "sess_bob")
    main.ok("progress", "work_review", "--session", "sess_bob", "-m", "half")
    main.ok("complete", "work_review", "--session", "sess_bob", "--result", '{"ok": true}')
    main.git("push", "-q", "origin", "main")
    evil = clones("evil")
    evil.git("checkout", "-q", "-b", "attack")
    return main, evil, {}


def _push_attack(evil: Repo) -> None:
    _commit_as_mallory(evil.path, "attack")
    evil.git("push", "-q", "origin", "attack")


def _events_of(repo: Repo, kind: str) -> list[tuple[Path, dict]]:
    return [(p, yaml.safe_load(p.read_bytes())) for p in repo.event_files() if f".{kind}." in p.name]


@pytest.mark.parametrize("how", ["other_kind", "failed_trace_other_sender", "back_dated_other_kind"])
def test_remote_branch_cannot_rewrite_reviewed_state(how, clones):
    main, evil, _ = _pair(clones)
    _path, done = next((p, e) for p, e in _events_of(evil, "trace") if e["body"]["state"] == "completed")
    if how == "other_kind":  # the completion's id, reused by a receipt (another kind, so another path)
        forged = dict(done, kind="receipt", body={"status": "canceled", "for_id": done["id"], "reason_code": "x"})
    elif how == "failed_trace_other_sender":  # the completion's id, a failed trace from another sender
        forged = dict(done, **{"from": "mallory.sess_m", "session_id": "sess_m"},
                      body={"state": "failed", "message": "it broke"})
    else:  # the same, dated before everything on main, so it would sort first
        forged = dict(done, kind="receipt", body={"status": "canceled", "for_id": done["id"], "reason_code": "x"},
                      hlc="0000000000000001-00000", ts="1970-01-01T00:00:00.001Z", after=[])
    from handoff.core import model
    rel = hostile.write(evil.path, f".handoffs/{model.event_path(forged)}", hostile.dump(forged))
    _push_attack(evil)
    assert main.j("work", "status", "--work", "work_review")["state"] == "completed"
    main.git("fetch", "-q", "origin")
    assert main.git("rev-parse", "--verify", "-q", "refs/remotes/origin/attack").strip()
    for _ in range(2):  # a fresh fold and the saved one
        assert main.j("work", "status", "--work", "work_review")["state"] == "completed"
        assert main.h("wait", "work_review", "--timeout", "0").code == 0
        shutil.rmtree(main.path / ".git" / "handoff" / "cache", ignore_errors=True)
    run_everything(main, outputs=(("-o", "json"),))
    from handoff.app.workspace import Workspace
    conflicts = [d for d in Workspace(main.path).state()["diagnostics"] if d["reason_code"] == "id_conflict"]
    assert any(d["path"] == rel[len(".handoffs/"):] and "ignored" in d["message"] for d in conflicts), conflicts
    doctor = main.h("doctor")
    assert "id_conflict" in doctor.out
    hostile.assert_index_agrees(main.path)
    # on the attack branch itself, verify refuses the reused id
    r = evil.h("verify", "--base", "origin/main", "-o", "json")
    assert r.code == 5 and rel in {f["path"] for f in r.json["findings"]}, r.out
    assert not (main.path / rel).exists()


def test_hostile_files_only_on_a_fetched_branch(base, clones):
    """The issue's crashing files, present only on a remote branch: a plain `git fetch`, then every command."""
    _, _, templates = base
    main, evil, _ = _pair(clones)
    names = []
    for case in ISSUE_CASES:
        template, ev = _case(templates, case)
        ev = dict(ev, workspace_id="w")
        names.append(hostile.write(evil.path, hostile.path_for(template, ev), hostile.dump(ev)))
    _push_attack(evil)
    main.git("fetch", "-q", "origin")
    main.session("carol", sid="sess_carol")
    main.j("request", "--session", "sess_alice", "--to", "carol", "--channel", "general", "--work",
           "work_other", "-d", "look")
    run_everything(main)
    assert main.j("work", "status", "--work", "work_review")["state"] == "completed"
    flagged = _diag_paths(main)
    assert {n[len(".handoffs/"):] for n in names} <= flagged


# ----------------------------------------------------------------------------------- a running watch

def test_running_watch_survives_a_hostile_file(base, tmp_path):
    repo0, facts, templates = base
    repo = _copy(repo0, tmp_path / "repo")
    with WatchProc(repo.path, "--session", "sess_bob") as w:
        w.quiet(1.5)
        for case in ("greet_capability_string", "protocol_list", "deadline_out_of_range", "work_id_mapping"):
            template, ev = _case(templates, case)
            hostile.write(repo.path, hostile.path_for(template, ev), hostile.dump(ev))
        _commit_as_mallory(repo.path, "hostile files under a running watcher")
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--surface", "direct", "--to",
                "bob.sess_bob", "--text", "after the hostile files")
        got = w.take(1, timeout=60)
        assert any((n.get("body") or {}).get("text") == "after the hostile files" for n in got), got
        assert w.proc.poll() is None, w.stderr
    assert "Traceback" not in w.stderr


# ------------------------------------------------------------------------------------ property test

def test_property_hostile_variants_never_raise(base):
    """Hypothesis: any field of any kind of event replaced by any value decodes to an event or one
    diagnostic; folding it with the conversation and building every view never raises; the state does
    not depend on the order of the files."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from handoff.core import queries, reducer
    from handoff.core.yaml import codec
    from handoff.views import audit, brief, metrics, report
    from handoff.views import payloads as views

    repo0, facts, templates = base
    root = repo0.path / ".handoffs"
    records = [reducer.decode(str(p.relative_to(root)), p.read_bytes()) for p in repo0.event_files()]
    assert all("event" in r for r in records)
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                        st.floats(allow_nan=False), st.text(max_size=40),
                        st.sampled_from(list(hostile.HOSTILE_VALUES.values())[-6:]))
    def nest(inner):
        return st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3))

    values = st.recursive(scalars, nest, max_leaves=8)
    fields = sorted({k for t in templates for k in t} | {"to", "work_id", "deadline_at", "expires_at", "after"})

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(t=st.sampled_from(templates), where=st.sampled_from(["top", "body"]), top=st.sampled_from(fields),
           body_key=st.sampled_from(sorted(hostile.BODY_KEYS)), value=values, seed=st.integers(0, 2 ** 32))
    def check(t, where, top, body_key, value, seed):
        if where == "top":
            ev = dict(t, **{top: value})
        else:
            ev = dict(t, body=dict(t.get("body") or {}, **{body_key: value}))
        if not (where == "top" and top == "id"):
            ev["id"] = hostile.fresh_id(t)
        rel = hostile.path_for(t, ev)[len(".handoffs/"):]
        try:  # the tool's own canonical form (read by its fast reader) or plain PyYAML (the strict loader)
            data = codec.dump(ev) if seed % 2 else hostile.dump(ev)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError):
            return  # not even YAML can say it
        rec = reducer.decode(rel, data)
        assert ("event" in rec) != ("error" in rec)
        recs = records + [rec]
        state = reducer.reduce(recs)
        shuffled = list(recs)
        random.Random(seed).shuffle(shuffled)
        assert json.dumps(reducer.reduce(shuffled), sort_keys=True, default=sorted) == \
            json.dumps(state, sort_keys=True, default=sorted)
        now = 1_800_000_000_000
        for s in state["sessions"].values():
            queries.inbox(state, s, set(), now, include_all=True)
            brief.human(brief.build(state, s, set(), now))
        for w in state["work"].values():
            views.work_payload(w, now)
            views.handoff_view(w, now)
        views.status(state)
        views.channels(state)
        metrics.compute(state)
        audit.timeline(recs, state)
        report.markdown(report.build(state, state, {r["event"]["id"] for r in recs if "event" in r}))
        if "event" in rec:
            from handoff.core.model import ALL_KINDS
            assert rec["event"]["kind"] in ALL_KINDS

    check()
