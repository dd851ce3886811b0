"""Integration points: the plain git pre-commit hook and the pre-commit framework manifest."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from conftest import ROOT, make_repo


def commit(repo, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "commit", "-q", *args], cwd=repo.path, capture_output=True, text=True)


def test_hook_blocks_an_edit_and_lets_new_events_through(repo):
    r = repo.j("hooks", "install")
    assert r["chained"] is None and Path(r["hook"]).stat().st_mode & 0o111
    s = repo.session("alice", "dev")["session_id"]
    sent = repo.j("send", "--session", s, "--channel", "dev", "--text", "hi", "--no-commit")
    repo.git("add", sent["paths"][0])
    ok = commit(repo, "-m", "new event")
    assert ok.returncode == 0, ok.stderr
    victim = sent["paths"][0]
    with open(repo.path / victim, "a") as fh:
        fh.write("# edited\n")
    blocked = commit(repo, "-am", "edit an event")  # -a: git hands the hook a temporary index
    assert blocked.returncode != 0
    said = blocked.stdout + blocked.stderr  # git sends a hook's output to stderr
    assert f"{victim}: edited:" in said and "FAILED" in said
    assert repo.git("log", "-1", "--format=%s").strip() == "new event"


def test_hook_chains_an_existing_hook_and_uninstalls_cleanly(repo):
    hooks = repo.path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    old = hooks / "pre-commit"
    old.write_text("#!/bin/sh\necho ran >> \"$(git rev-parse --show-toplevel)/.chained-ran\"\nexit 0\n")
    old.chmod(0o755)
    r = repo.j("hooks", "install")
    assert r["chained"] and Path(r["chained"]).exists()
    assert repo.j("hooks", "install")["updated"] is True  # idempotent
    (repo.path / "a.txt").write_text("x\n")
    repo.git("add", "a.txt")
    assert commit(repo, "-m", "user work").returncode == 0
    assert (repo.path / ".chained-ran").read_text() == "ran\n"
    # a failing chained hook still blocks the commit
    old_chained = Path(r["chained"])
    old_chained.write_text("#!/bin/sh\nexit 3\n")
    (repo.path / "b.txt").write_text("y\n")
    repo.git("add", "b.txt")
    assert commit(repo, "-m", "blocked by the old hook").returncode != 0
    u = repo.j("hooks", "uninstall")
    assert u["removed"] is True and u["restored"]
    assert old.read_text() == "#!/bin/sh\nexit 3\n"


def test_hook_does_nothing_without_handoffs(tmp_path):
    plain = make_repo(tmp_path / "plain", init=False)
    plain.ok("hooks", "install")
    (plain.path / "c.txt").write_text("z\n")
    plain.git("add", "c.txt")
    assert commit(plain, "-m", "no handoffs here").returncode == 0


def test_pre_commit_framework_manifest_and_workflow_example():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "handoff-verify" and hooks[0]["entry"] == "handoff verify --staged"
    assert hooks[0]["pass_filenames"] is False and hooks[0]["always_run"] is True and "files" not in hooks[0]
    wf = yaml.safe_load((ROOT / "examples" / "github-workflow.yml").read_text())
    steps = wf["jobs"]["verify"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any("handoff verify --base" in s.get("run", "") and "--format github" in s["run"] for s in steps)
    # the install is pinned and names our distribution, never PyPI's unrelated `handoff`
    pin = wf["env"]["HANDOFF_PIP"]
    assert pin.startswith("git-handoff") and ("==" in pin or "@" in pin)
    assert any('pip install "$HANDOFF_PIP"' in s.get("run", "") for s in steps)
