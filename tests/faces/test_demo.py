"""`handoff demo`: the README's first command, run through the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, Repo, git


def test_demo_human_prints_each_command_and_cleans_up(tmp_path):
    r = Repo(tmp_path).ok("demo")
    for cmd in ("$ handoff init", "$ handoff session new", "$ handoff request", "$ handoff inbox --session sess_reviewer",
                "$ handoff accept", "$ handoff progress", "$ handoff complete", "$ handoff work lookup",
                "$ git log --oneline"):
        assert cmd in r.out, cmd
    assert "accepted · completed" in r.out and "checkpoint:" in r.out
    repo_line = next(line for line in r.out.splitlines() if line.startswith("A throwaway git repository: "))
    assert not (tmp_path / repo_line.split(": ", 1)[1]).exists()  # the temp repo is gone


def test_demo_json_summary_and_kept_dir(tmp_path):
    target = tmp_path / "kept"
    d = Repo(tmp_path).j("demo", "--dir", str(target))
    assert d["ok"] is True and d["kept"] is True and d["repo"] == str(target.resolve())
    assert d["state"] == "completed" and d["checkpoint"]["next"] == "docs/install.md"
    assert d["result"]["verdict"] == "docs match the release"
    assert all(s["exit_code"] == 0 for s in d["steps"] if not s.get("skipped"))
    if d["metrics"] is not None:
        assert d["metrics"]["pairs"][0]["from_agent"] == "coordinator"
    # the kept repo is a real one: the CLI and git see the same handoff
    kept = Repo(target)
    w = kept.j("work", "lookup", "--work", d["work_id"])
    assert w["state"] == "completed" and w["accepted_by"] == "release-reviewer.sess_reviewer"
    log = git(target, "log", "--oneline").splitlines()
    assert log == d["git_log"] and d["handoff_commits"] == len(log) - 1
    assert git(target, "status", "--porcelain") == ""
    # a non-empty directory is refused, not overwritten
    r = Repo(tmp_path).h("demo", "--dir", str(target), "-o", "json")
    assert r.code == 2 and r.json["error"]["reason_code"] == "invalid_argument"


def test_demo_as_a_real_process_like_make_demo(tmp_path):
    env = {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "handoff", "demo", "-o", "json"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "completed"
