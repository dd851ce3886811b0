"""`handoff verify`: append-only over a range, every file's content, lifecycle, identity, outputs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_repo


def handoff_cycle(repo, a="alice", b="bob", channel="dev", sa=None, sb=None):
    """A request from a to b, accepted and completed; returns the work id."""
    sa = sa or repo.session(a, channel)["session_id"]
    sb = sb or repo.session(b, channel)["session_id"]
    wid = repo.j("request", "--session", sa, "--to", b, "--channel", channel, "-d", "Please review the parser",
                 "--context", '{"files_changed":["src/parser.py"]}')["handoff_id"]
    repo.ok("accept", wid, "--session", sb)
    repo.ok("complete", wid, "--session", sb, "-m", "done")
    return wid


def verify(repo, *args):
    r = repo.h("verify", *args, "-o", "json")
    return r.code, r.json


def codes_by_path(report, severity="error"):
    out = {}
    for f in report["findings"]:
        if f["severity"] == severity:
            out.setdefault(f["path"], set()).add(f["code"])
    return out


@pytest.fixture
def branched(repo):
    """main with one finished handoff, and a feature branch checked out on top of it."""
    handoff_cycle(repo)
    repo.git("checkout", "-q", "-b", "feature")
    return repo


def test_branch_that_only_adds_events_passes(branched):
    repo = branched
    s = repo.session("carol", "dev")["session_id"]
    wid = repo.j("request", "--session", s, "--to", "alice", "--channel", "dev", "-d", "Ship it")["handoff_id"]
    code, rep = verify(repo, "--base", "main")
    assert code == 0, rep
    assert rep["ok"] is True and rep["errors"] == 0
    assert rep["new_files"] == 2 and rep["files"] == 2 + 6
    assert rep["against"] == "main"
    # the default base is the merge base with the default branch (here: local main)
    assert verify(repo)[1]["base"] == rep["base"]
    assert repo.ok("verify").out.startswith("handoff verify: OK")
    assert wid


def test_without_a_remote_says_which_base_it_fell_back_to(repo):
    """A fresh repo on main, no origin: verify compares with the empty tree and says so, and why."""
    handoff_cycle(repo)
    code, rep = verify(repo)
    assert code == 0 and rep["base_source"] == "none" and rep["against"] is None, rep
    assert rep["new_files"] == rep["files"] == 6
    assert (rep["identity"], rep["identity_status"]) == (False, "off")  # off: not configured (not failed)
    first, second = repo.ok("verify").out.splitlines()[:2]
    assert "new since the empty tree" in first and first.endswith("identity: off (not configured)")
    assert second.startswith("  base: no --base given and no default branch") and "pass --base REV" in second
    # on a branch, the fallback is the merge base with the default branch, named
    repo.git("checkout", "-q", "-b", "feature")
    code, rep = verify(repo)
    assert (rep["base_source"], rep["against"], rep["new_files"]) == ("default_branch", "refs/heads/main", 0)
    assert "  base: no --base given: the merge base with refs/heads/main, the default branch" in repo.ok("verify").out
    # an explicit base, --all and --staged say where theirs came from
    assert verify(repo, "--base", "main")[1]["base_source"] == "base"
    assert verify(repo, "--all")[1]["base_source"] == "all"
    assert verify(repo, "--staged")[1]["base_source"] == "staged"
    assert "  base:" not in repo.ok("verify", "--base", "main").out


def _event_paths(repo, rev="HEAD"):
    return sorted(p for p in repo.git("ls-tree", "-r", "--name-only", rev, "--", ".handoffs/events").split())


def test_edit_delete_rename_chmod_symlink_submodule_each_fail_by_name(branched):
    repo = branched
    paths = _event_paths(repo)
    edited, deleted, renamed, chmodded, linked, sub = paths[:6]
    with open(repo.path / edited, "a") as fh:
        fh.write("# harmless-looking comment\n")
    repo.git("rm", "-q", deleted)
    new_name = renamed.replace(".yaml", ".x.yaml")
    repo.git("mv", renamed, new_name)
    os.chmod(repo.path / chmodded, 0o755)
    (repo.path / linked).unlink()
    os.symlink(Path(edited).name, repo.path / linked)
    repo.git("add", "-A", ".handoffs")
    blob = repo.git("rev-parse", "HEAD").strip()
    repo.git("rm", "-q", sub)
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{blob},{sub}")
    repo.git("commit", "-qm", "tamper with history")
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and rep["ok"] is False
    assert rep["error"]["reason_code"] == "verification_failed"
    errors = codes_by_path(rep)
    assert "edited" in errors[edited]
    assert "deleted" in errors[deleted]
    assert "renamed" in errors[renamed] and new_name in next(
        f["message"] for f in rep["findings"] if f["path"] == renamed)
    assert "mode_changed" in errors[chmodded]
    assert "mode_changed" in errors[linked]
    assert "mode_changed" in errors[sub]
    # human output names each file too, and exits 5
    r = repo.h("verify", "--base", "main")
    assert r.code == 5
    for p in (edited, deleted, renamed, chmodded, linked, sub):
        assert p in r.out
    # GitHub annotations point at the files
    gh = repo.h("verify", "--base", "main", "--format", "github")
    assert gh.code == 5
    assert f"::error file={edited},line=1,title=handoff verify%3A edited::" in gh.out
    assert gh.out.rstrip().splitlines()[-1].startswith("::error::handoff verify failed")


def test_new_files_symlink_or_executable_fail(branched):
    repo = branched
    s = repo.session("carol", "dev")["session_id"]
    new = repo.j("send", "--session", s, "--channel", "dev", "--text", "hello", "--no-commit")["paths"][0]
    os.chmod(repo.path / new, 0o755)
    link = str(Path(new).parent / "msg_01jzzzzzzzzzzzzzzzzzzzzzzz.say.x.yaml")
    os.symlink("/etc/passwd", repo.path / link)
    repo.git("add", "-A", ".handoffs")
    repo.git("commit", "-qm", "add odd files")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    errors = codes_by_path(rep)
    assert errors[new] == {"not_regular_file"} and errors[link] == {"not_regular_file"}


def test_every_file_checked_parse_schema_name_duplicate_clock(branched):
    repo = branched
    day = repo.path / _event_paths(repo)[0]
    bad_yaml = day.parent / "msg_01jzzzzzzzzzzzzzzzzzzzzzz0.say.alice.sess_x.yaml"
    bad_yaml.write_text("id: [unclosed\n")
    original = (repo.path / _event_paths(repo)[0]).read_bytes()
    wrong_name = day.parent / "msg_01jzzzzzzzzzzzzzzzzzzzzzz1.say.alice.sess_x.yaml"
    wrong_name.write_bytes(original)  # content belongs to another file name: also a duplicate id
    s = repo.session("dave", "dev")["session_id"]
    # a separate process: the in-process id clock stays monotonic and would carry 2099 into later tests
    proc = repo.proc("send", "--session", s, "--channel", "dev", "--text", "from the future", "-o", "json",
                     env={"HANDOFF_NOW": "2099-01-01T00:00:00Z"})
    future = json.loads(proc.stdout)["paths"][0]
    repo.git("add", "-A", ".handoffs")
    repo.git("commit", "-qm", "bad adds")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    errors = codes_by_path(rep)
    rel = lambda p: str(p.relative_to(repo.path))  # noqa: E731
    assert errors[rel(bad_yaml)] == {"malformed"}
    assert "malformed" in errors[rel(wrong_name)]
    assert "clock_skew" in errors[future]
    # the old file whose copy was added is only a warning: it was already on the base
    assert "duplicate_id" in codes_by_path(rep, "warning")[_event_paths(repo, "main")[0]]


def test_duplicate_id_across_buckets(branched):
    repo = branched
    src = repo.path / _event_paths(repo)[-1]
    other_day = src.parent.parent.parent / "1999-12" / "31"
    other_day.mkdir(parents=True)
    copy = other_day / src.name
    shutil.copy(src, copy)
    repo.git("add", "-A", ".handoffs")
    repo.git("commit", "-qm", "copy")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    rel = str(copy.relative_to(repo.path))
    assert {"malformed"} <= codes_by_path(rep)[rel]  # wrong bucket for its id
    assert any(f["code"] == "duplicate_id" and f["path"] == rel for f in rep["findings"])


def test_causal_links_checked(branched):
    repo = branched
    s = repo.session("erin", "dev")["session_id"]
    sent = repo.j("send", "--session", s, "--channel", "dev", "--text", "first", "--no-commit")
    path = repo.path / sent["paths"][0]
    text = path.read_text()
    # hand-edit an uncommitted new file so it lists itself as parent (what a careless tool might write)
    path.write_text(text.replace("body:", f"after:\n- '{sent['id']}'\nbody:", 1))
    repo.git("add", "-A", ".handoffs")
    repo.git("commit", "-qm", "self parent")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    assert "causal_link" in codes_by_path(rep)[sent["paths"][0]]


def test_accept_links_to_its_receipt_not_a_placeholder(repo):
    handoff_cycle(repo)
    code, rep = verify(repo, "--all")
    assert code == 0, rep
    assert not [f for f in rep["findings"] if f["code"] == "unknown_parent"], rep["findings"]


def test_lifecycle_violation_new_in_range_fails_older_is_reported(repo):
    sa = repo.session("alice", "dev")["session_id"]
    sb = repo.session("bob", "dev")["session_id"]
    wid = repo.j("request", "--session", sa, "--to", "bob", "--channel", "dev", "-d", "race me")["handoff_id"]
    repo.ok("accept", wid, "--session", sb)
    repo.git("checkout", "-q", "-b", "x")
    repo.ok("complete", wid, "--session", sb)
    repo.git("checkout", "-q", "-b", "y", "main")
    repo.ok("fail", wid, "--session", sa, "-m", "changed my mind")
    assert verify(repo, "--base", "main")[0] == 0
    repo.git("checkout", "-q", "x")
    repo.git("merge", "-q", "--no-edit", "y")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    refused = [f for f in rep["findings"] if f["code"] == "work_closed"]
    assert len(refused) == 1 and refused[0]["severity"] == "error"
    # once that race is on main, a later branch is not blamed for it
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-edit", "x")
    repo.git("checkout", "-q", "-b", "later")
    repo.session("frank", "dev")
    code, rep = verify(repo, "--base", "main")
    assert code == 0
    assert [f["severity"] for f in rep["findings"] if f["code"] == "work_closed"] == ["warning"]


def test_staged_checks_the_index(repo):
    handoff_cycle(repo)
    s = repo.session("gina", "dev")["session_id"]
    sent = repo.j("send", "--session", s, "--channel", "dev", "--text", "staged", "--no-commit")
    repo.git("add", sent["paths"][0])
    assert verify(repo, "--staged")[0] == 0
    victim = _event_paths(repo)[0]
    with open(repo.path / victim, "a") as fh:
        fh.write("# edit\n")
    assert verify(repo, "--staged")[0] == 0  # not staged yet: the index is what gets committed
    repo.git("add", victim)
    code, rep = verify(repo, "--staged")
    assert code == 5 and codes_by_path(rep)[victim] == {"edited"}
    assert rep["head"] == "index"


def test_rev_is_read_without_checkout_with_constant_git_calls(tmp_path, monkeypatch):
    from handoff.git import cmd as gitcmd

    def calls_for(n_sessions: int) -> tuple[int, dict]:
        repo = make_repo(tmp_path / f"r{n_sessions}")
        repo.git("checkout", "-q", "-b", "side")
        for i in range(n_sessions):
            repo.session(f"agent{i}", "dev")
        repo.git("checkout", "-q", "main")
        counted = []
        real = gitcmd.run
        monkeypatch.setattr(gitcmd, "run", lambda *a, **k: (counted.append(a[1]), real(*a, **k))[1])
        code, rep = verify(repo, "--rev", "side", "--base", "main")
        monkeypatch.setattr(gitcmd, "run", real)
        assert code == 0, rep
        assert rep["new_files"] == n_sessions
        assert "show" not in counted
        return len(counted), rep

    few, _ = calls_for(2)
    many, _ = calls_for(12)
    assert few == many


def test_identity_emails_per_agent(repo):
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text() + "identity:\n  agents:\n    alice: ['alice@example.com']\n"
                   "    bob: ['*@bots.example.com']\n")
    repo.git("commit", "-qam", "identity")
    repo.git("checkout", "-q", "-b", "feature")
    as_alice = {"GIT_AUTHOR_EMAIL": "alice@example.com"}
    as_bot = {"GIT_AUTHOR_EMAIL": "bob@bots.example.com"}
    sa = repo.j("session", "new", "--agent", "alice", "--channel", "dev", env=as_alice)["session_id"]
    sb = repo.j("session", "new", "--agent", "bob", "--channel", "dev", env=as_bot)["session_id"]
    wid = repo.j("request", "--session", sa, "--to", "bob", "--channel", "dev", "-d", "x", env=as_alice)["handoff_id"]
    code, rep = verify(repo, "--base", "main")
    assert code == 0 and rep["identity"] is True and rep["identity_status"] == "passed", rep
    assert ", identity: passed" in repo.ok("verify", "--base", "main").out
    accepted = repo.j("accept", wid, "--session", sb, env=as_alice)  # bob's events, committed by alice
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and rep["identity"] is True and rep["identity_status"] == "failed"
    assert ", identity: failed" in repo.h("verify", "--base", "main").out
    bad = {f["path"] for f in rep["findings"] if f["code"] == "identity_mismatch"}
    assert bad == set(accepted["paths"])
    # --staged uses the identity of the commit being made
    s2 = repo.j("send", "--session", sb, "--channel", "dev", "--text", "hi", "--no-commit")
    repo.git("add", s2["paths"][0])
    assert verify(repo, "--staged")[0] == 5  # the test's default author is not allowed for bob
    r = repo.h("verify", "--staged", "-o", "json", env={"GIT_AUTHOR_EMAIL": "bob@bots.example.com"})
    assert r.code == 0, r.out


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen not installed")
def test_ssh_signatures(repo, tmp_path):
    keys = {}
    for name in ("alice", "mallory"):
        key = tmp_path / f"{name}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
        keys[name] = key
    pub = (tmp_path / "alice_key.pub").read_text().split()
    (repo.path / ".handoffs" / "allowed_signers").write_text(f"alice {pub[0]} {pub[1]}\n")
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text() + "identity:\n  signatures: true\n")
    repo.git("add", ".handoffs")
    repo.git("commit", "-qm", "signers")
    repo.git("checkout", "-q", "-b", "feature")
    signed = repo.j("session", "new", "--agent", "alice", "--channel", "dev",
                    env={"HANDOFF_SIGNING_KEY": str(keys["alice"])})
    path = repo.path / repo.git("log", "-1", "--name-only", "--format=").strip()
    assert "BEGIN SSH SIGNATURE" in path.read_text()
    code, rep = verify(repo, "--base", "main")
    assert code == 0, rep
    assert any(f["code"] == "identity_config_changed" for f in rep["findings"]) is False  # changed on main, not here
    forged = repo.j("send", "--session", signed["session_id"], "--channel", "dev", "--text", "pay mallory",
                    env={"HANDOFF_SIGNING_KEY": str(keys["mallory"])})
    unsigned = repo.j("send", "--session", signed["session_id"], "--channel", "dev", "--text", "no sig")
    code, rep = verify(repo, "--base", "main")
    assert code == 5
    errors = codes_by_path(rep)
    assert errors == {forged["paths"][0]: {"bad_signature"}, unsigned["paths"][0]: {"unsigned"}}


def test_verify_in_repo_without_handoffs_is_clean(tmp_path):
    repo = make_repo(tmp_path / "plain", init=False)
    code, rep = verify(repo)
    assert code == 0 and rep["files"] == 0


def test_bad_revision_is_not_found(repo):
    r = repo.h("verify", "--rev", "nope", "-o", "json")
    assert r.code == 4 and r.json["error"]["reason_code"] == "not_found"


def test_config_edits_allowed_identity_edits_flagged(repo):
    repo.git("checkout", "-q", "-b", "feature")
    cfg = repo.path / ".handoffs" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("commit: 'auto'", "commit: 'off'"))
    repo.git("commit", "-qam", "commit off")
    code, rep = verify(repo, "--base", "main")
    assert code == 0 and rep["findings"] == []
    cfg.write_text(cfg.read_text() + "identity:\n  agents:\n    alice: ['me@example.com']\n")
    repo.git("commit", "-qam", "who is alice")
    code, rep = verify(repo, "--base", "main")
    assert code == 0
    assert [(f["severity"], f["code"]) for f in rep["findings"]] == [("warning", "identity_config_changed")]
    repo.git("rm", "-q", ".handoffs/config.yaml")
    repo.git("commit", "-qm", "drop config")
    code, rep = verify(repo, "--base", "main")
    assert code == 5 and codes_by_path(rep)[".handoffs/config.yaml"] == {"deleted"}


def test_unborn_repository_verifies_clean(tmp_path):
    from conftest import Repo
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "main")
    r = Repo(fresh)
    r.ok("init", "--no-commit")
    r.git("add", "-A")
    code, rep = verify(r, "--staged")
    assert code == 0 and rep["findings"] == []  # adding config.yaml without identity is ordinary
    assert verify(r)[0] == 0
