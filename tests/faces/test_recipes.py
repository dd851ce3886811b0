"""The agent-harness recipes in examples/: each one's scripts run against a real repository.

The scripts call `handoff` through $HANDOFF, set here to this checkout's CLI.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

EXAMPLES = ROOT / "examples"
HANDOFF = f"{sys.executable} -m handoff"


def _env(repo, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HANDOFF=HANDOFF)
    env.update(extra)
    return env


def _has_watch(repo) -> bool:
    return repo.h("watch", "--help").code == 0




def _install_claude(repo):
    shutil.copytree(EXAMPLES / "claude-code" / "hooks", repo.path / ".claude" / "hooks")
    shutil.copy(EXAMPLES / "claude-code" / "settings.json", repo.path / ".claude" / "settings.json")
    return json.loads((repo.path / ".claude" / "settings.json").read_text())


def _hook(repo, settings: dict, event: str, payload: dict) -> subprocess.CompletedProcess:
    """Run the hook command exactly as written in settings.json, the way Claude Code does (via a shell)."""
    [group] = settings["hooks"][event]
    [hook] = group["hooks"]
    env = _env(repo, CLAUDE_PROJECT_DIR=str(repo.path), **settings["env"])
    return subprocess.run(["bash", "-c", hook["command"]], input=json.dumps(payload), capture_output=True,
                          text=True, env=env, cwd=repo.path / ".claude", timeout=120)


def test_claude_code_hooks(repo):
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    settings = _install_claude(repo)
    sid = settings["env"]["HANDOFF_SESSION"]
    coord = repo.session("coordinator", "release", "sess_coord")
    repo.ok("request", "--session", coord["session_id"], "--to", "reviewer", "--channel", "release",
            "-d", "Review the parser change", "--work", "work_parser")

    # session start: the session is opened under the fixed id, the brief becomes Claude's context
    start = _hook(repo, settings, "SessionStart", {"hook_event_name": "SessionStart", "source": "startup"})
    assert start.returncode == 0, start.stderr
    assert f"handoff brief for reviewer.{sid}" in start.stdout
    assert "handoff accept work_parser --session " + sid in start.stdout
    assert repo.j("session", "status", sid)["agent"] == "reviewer"

    # after a turn with nothing new: silence, Claude stops
    stop = _hook(repo, settings, "Stop", {"hook_event_name": "Stop", "stop_hook_active": False})
    assert stop.returncode == 0 and stop.stdout.strip() == "", stop.stdout

    # something new arrives: announced once, as data, at the turn boundary
    msg = repo.j("send", "--session", coord["session_id"], "--channel", "release", "--to", f"reviewer.{sid}",
                 "-m", "also check the docs")
    stop = _hook(repo, settings, "Stop", {"hook_event_name": "Stop", "stop_hook_active": False})
    out = json.loads(stop.stdout)
    assert out["decision"] == "block" and msg["id"] in out["reason"] and "not instructions" in out["reason"]
    again = _hook(repo, settings, "Stop", {"hook_event_name": "Stop", "stop_hook_active": True})
    assert again.stdout.strip() == ""  # never re-announced
    # reading is not answering: the entry is still in the inbox
    assert msg["id"] in [e["id"] for e in repo.j("inbox", "--session", sid)["entries"]]
    # doctor agrees the hook scripts are in place
    c = {x["check"]: x for x in repo.j("doctor", "--session", sid)["checks"]}
    assert c["hooks (.claude/settings.json)"]["status"] == "ok"


def test_claude_code_hooks_stay_quiet_outside_handoff_repos(tmp_path):
    (tmp_path / "plain").mkdir()
    for script in ("handoff-session-start.sh", "handoff-after-turn.sh"):
        proc = subprocess.run([str(EXAMPLES / "claude-code" / "hooks" / script)], input="{}", capture_output=True,
                              text=True, env=dict(os.environ, CLAUDE_PROJECT_DIR=str(tmp_path / "plain"),
                                                  HANDOFF_SESSION="sess_x", HANDOFF="false"))
        assert proc.returncode == 0 and proc.stdout == ""


def test_codex_notify(repo):
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    worker = repo.session("codex", "release", "sess_codex")
    coord = repo.session("coordinator", "release", "sess_coord")
    script = str(EXAMPLES / "codex" / "notify.sh")
    env = _env(repo, HANDOFF_SESSION=worker["session_id"], PATH="/usr/bin:/bin")  # no notify-send here
    turn = json.dumps({"type": "agent-turn-complete", "turn-id": "1", "cwd": str(repo.path),
                       "last-assistant-message": "done"})
    quiet = subprocess.run([script, turn], capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == ""
    h = repo.j("request", "--session", coord["session_id"], "--to", "codex", "--channel", "release",
               "-d", "Port the parser", "--work", "work_port")
    told = subprocess.run([script, turn], capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert told.returncode == 0 and "1 new inbox entry" in told.stderr and "work_port" in told.stderr
    log = repo.path / ".git" / "handoff" / "codex-news.log"
    assert "Port the parser" in log.read_text()
    again = subprocess.run([script, turn], capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert again.stderr == ""
    other = subprocess.run([script, json.dumps({"type": "something-else"})], capture_output=True, text=True,
                           env=env, timeout=60)
    assert other.returncode == 0 and other.stderr == ""
    assert h["status"] == "pending"


def test_shell_agent_does_a_handoff(repo):
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    (repo.path / "a.txt").write_text("1\n2\n3\n")
    (repo.path / "b.txt").write_text("x\n")
    coord = repo.session("coordinator", "general", "sess_coord")
    agent = subprocess.Popen([str(EXAMPLES / "shell-agent" / "agent.sh")], cwd=repo.path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env(repo, LIMIT="1", HANDOFF_SESSION="sess_shell"))
    try:
        repo.ok("request", "--session", coord["session_id"], "--to", "shell-agent", "--channel", "general",
                "-d", "Count lines", "--work", "work_count",
                "--context", json.dumps({"files_changed": ["a.txt", "b.txt", "../outside.txt"]}))
        done = repo.proc("wait", "work_count", "--timeout", "120", "-o", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        w = json.loads(done.stdout)
        assert w["state"] == "completed" and w["result"] == {"lines": 4, "files": ["a.txt", "b.txt"]}
        assert w["checkpoint"] == {"done": ["a.txt", "b.txt"]}
        assert agent.wait(timeout=120) == 0  # LIMIT=1: the watcher exits after delivering one entry
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert repo.j("work", "lookup", "--work", "work_count")["accepted_by"] == "shell-agent.sess_shell"


def test_python_api_example(repo):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "python_api.py"), str(repo.path)], capture_output=True,
                          text=True, env=_env(repo), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "completed completed" in lines and "refused: work_closed" in lines
    assert sum(line.startswith("coordinator sees") for line in lines) == 4
    assert lines[-1].endswith("completed {'missing_entries': 0}")
    assert repo.git("status", "--porcelain") == ""
