"""The ``.pre-commit-hooks.yaml`` hook through the real pre-commit framework and real ``git commit``s.

A hook repository is made from this checkout's files as they are now (manifest, package, project
file), so the framework installs exactly the code under test into its own environment, as a user's
``repo:``/``rev:`` entry would.  The environment is built once per module (PRE_COMMIT_HOME).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, git, make_repo

pytest.importorskip("pre_commit")


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory):
    src = tmp_path_factory.mktemp("hook-repo")
    for name in (".pre-commit-hooks.yaml", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "handoff", src / "handoff", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "hook repo"]):
        subprocess.run(["git", *args], cwd=src, check=True, env=env, capture_output=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True,
                         text=True, env=env).stdout.strip()
    return {"path": src, "rev": rev, "home": tmp_path_factory.mktemp("pre-commit-home")}


@pytest.fixture
def project(tmp_path, hook_repo, monkeypatch):
    monkeypatch.setenv("PRE_COMMIT_HOME", str(hook_repo["home"]))
    repo = make_repo(tmp_path / "project")
    repo.session("alice", "general", sid="sess_alice")
    (repo.path / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hook_repo['path']}\n  rev: {hook_repo['rev']}\n  hooks:\n  - id: handoff-verify\n")
    repo.git("add", ".pre-commit-config.yaml")
    repo.git("commit", "-qm", "pre-commit config")
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo.path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo


def commit(repo, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "commit", *args], cwd=repo.path, capture_output=True, text=True, timeout=600)


def test_commit_that_only_deletes_an_event_is_refused(project):
    event = project.event_files()[0]
    project.git("rm", "-q", str(event.relative_to(project.path)))
    proc = commit(project, "-m", "drop an event")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "handoff verify" in out and "deleted" in out, out
    assert event.name in git(project.path, "ls-tree", "-r", "--name-only", "HEAD")  # nothing was committed
    # `pre-commit run` (what CI and editors call) says the same with nothing but a deletion staged
    run = subprocess.run([sys.executable, "-m", "pre_commit", "run"], cwd=project.path, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode != 0 and "deleted" in run.stdout, run.stdout + run.stderr


def test_commits_that_add_events_or_touch_nothing_of_handoff_pass(project):
    project.j("send", "--session", "sess_alice", "--channel", "general", "--text", "hello", "--no-commit")
    project.git("add", ".handoffs")
    proc = commit(project, "-m", "a new event")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (project.path / "notes.txt").write_text("unrelated\n")
    project.git("add", "notes.txt")
    proc = commit(project, "-m", "unrelated")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # an edit through `git commit -a` (git's temporary index) is refused too
    event = project.event_files()[0]
    event.write_text(event.read_text().replace("general", "generall", 1))
    proc = commit(project, "-am", "edit an event")
    assert proc.returncode != 0 and "edited" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
