"""`handoff doctor`: each check, healthy and broken, through the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, make_repo


def _checks(d: dict) -> dict:
    return {c["check"]: c for c in d["checks"]}


def test_doctor_healthy_repo(repo):
    repo.session("reviewer", "release", "sess_rev")
    r = repo.h("doctor", "--session", "sess_rev", "-o", "json")
    assert r.code == 0, r.out
    c = _checks(r.json)
    for name in ("git identity", ".handoffs/config.yaml", ".handoffs/ layout", "events", "uncommitted events",
                 "clock skew", "session"):
        assert c[name]["status"] == "ok", c[name]
    assert c["watcher"]["status"] == "warn" and "handoff watch --session sess_rev" in c["watcher"]["fix"]
    assert c["inotify limits"]["status"] in ("ok", "warn", "skip")
    assert "fix:" in repo.ok("doctor", "--session", "sess_rev").out


def test_doctor_finds_and_explains_problems(repo):
    repo.session("reviewer", "release", "sess_rev")
    repo.ok("send", "--session", "sess_rev", "--channel", "release", "-m", "not committed", "--no-commit")
    (repo.path / ".claude" / "hooks").mkdir(parents=True)
    (repo.path / ".claude" / "hooks" / "start.sh").write_text("#!/bin/sh\nhandoff brief\n")  # not executable
    (repo.path / ".claude" / "settings.json").write_text(json.dumps({"hooks": {
        "SessionStart": [{"hooks": [{"type": "command", "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/start.sh'}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "bash .claude/hooks/missing.sh"}]}]}}))
    # this machine's clock far behind the newest event
    r = repo.h("doctor", "--session", "sess_rev", "-o", "json", env={"HANDOFF_NOW": "2000-01-01T00:00:00Z"})
    assert r.code == 1
    c = _checks(r.json)
    assert c["uncommitted events"]["status"] == "warn" and "1 event files" in c["uncommitted events"]["message"]
    assert "--no-commit" in c["uncommitted events"]["fix"] and "git add .handoffs/events" in c["uncommitted events"]["fix"]
    hooks = c["hooks (.claude/settings.json)"]
    assert hooks["status"] == "fail" and "start.sh is not executable" in hooks["message"]
    assert "missing.sh is missing" in hooks["message"] and "chmod +x" in hooks["fix"]
    assert c["clock skew"]["status"] == "warn" and "ahead" in c["clock skew"]["message"]
    r = repo.h("doctor", "--session", "sess_gone", "-o", "json")
    assert _checks(r.json)["session"]["status"] == "fail"


def test_doctor_bad_config_and_missing_identity(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo.path / ".handoffs" / "config.yaml").write_text("workspace_id: 'has space'\ncommit: 'sometimes'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(tmp_path / "nohome"), GIT_CONFIG_NOSYSTEM="1", PYTHONPATH=str(ROOT),
               EMAIL="", GIT_AUTHOR_NAME="", GIT_COMMITTER_NAME="")
    (tmp_path / "nohome").mkdir()
    proc = subprocess.run([sys.executable, "-m", "handoff", "doctor", "-o", "json"], cwd=repo.path,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    c = _checks(json.loads(proc.stdout))
    assert c[".handoffs/config.yaml"]["status"] == "fail"
    assert "workspace_id" in c[".handoffs/config.yaml"]["message"] and "commit" in c[".handoffs/config.yaml"]["message"]
    ident = c["git identity"]
    assert ident["status"] == "fail" and "git config user.email" in ident["fix"]


def test_doctor_outside_an_initialised_repo(tmp_path):
    repo = make_repo(tmp_path / "r", init=False)
    r = repo.h("doctor", "-o", "json")
    assert r.code == 1
    assert _checks(r.json)[".handoffs/"]["fix"] == "run `handoff init` in the repository first"


def test_doctor_sees_a_running_watcher(repo):
    """A watcher (the API's watch generator, in a real process) registers itself; doctor finds it."""
    repo.session("reviewer", "release", "sess_rev")
    code = ("import sys\nfrom handoff import Handoff\n"
            "for e in Handoff('.').session('sess_rev').watch():\n    print(e['id'], flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo.path, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        sent = repo.j("send", "--session", "sess_rev", "--channel", "release", "-m", "own")  # not its inbox
        other = repo.session("coordinator", "release", "sess_coord")
        msg = repo.j("send", "--session", other["session_id"], "--channel", "release", "-m", "hello")
        assert proc.stdout.readline().strip() == msg["id"] != sent["id"]
        c = _checks(repo.j("doctor", "--session", "sess_rev"))
        assert c["watcher"]["status"] == "ok" and str(proc.pid) in c["watcher"]["message"]
    finally:
        proc.terminate()
        proc.wait()


def test_doctor_sees_handoff_watch_and_its_exit(repo):
    repo.session("reviewer", "release", "sess_rev")
    other = repo.session("coordinator", "release", "sess_coord")
    proc = subprocess.Popen([sys.executable, "-m", "handoff", "watch", "--session", "sess_rev", "-o", "jsonl"],
                            cwd=repo.path, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        msg = repo.j("send", "--session", other["session_id"], "--channel", "release", "-m", "ping")
        assert json.loads(proc.stdout.readline())["id"] == msg["id"]  # the watcher is up and delivering
        c = _checks(repo.j("doctor", "--session", "sess_rev"))
        assert c["watcher"]["status"] == "ok" and str(proc.pid) in c["watcher"]["message"]
        assert _checks(repo.j("doctor", "--session", "sess_coord"))["watcher"]["status"] == "warn"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert _checks(repo.j("doctor", "--session", "sess_rev"))["watcher"]["status"] == "warn"
    assert not list((repo.path / ".git" / "handoff" / "watchers").glob("*.json"))  # it cleaned up on SIGTERM
