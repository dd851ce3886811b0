"""The agent-harness recipes in examples/: each one's scripts run against a real repository.

The scripts call `handoff` through $HANDOFF, set here to this checkout's CLI.
"""
from __future__ import annotations

import json
import os
import re
import shlex
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


def _hook(repo, settings: dict, event: str, payload: dict, **env) -> subprocess.CompletedProcess:
    """Run the hook command exactly as written in settings.json, the way Claude Code does (via a shell),
    with the stdin JSON Claude Code gives it (session_id, transcript_path, cwd, hook_event_name, ...)."""
    [group] = settings["hooks"][event]
    [hook] = group["hooks"]
    full_env = _env(repo, CLAUDE_PROJECT_DIR=str(repo.path), **settings["env"], **env)
    stdin = {"session_id": "3f1c2a9e-claude", "transcript_path": str(repo.path / "t.jsonl"), "cwd": str(repo.path),
             "hook_event_name": event, **payload}
    return subprocess.run(["bash", "-c", hook["command"]], input=json.dumps(stdin), capture_output=True,
                          text=True, env=full_env, cwd=repo.path / ".claude", timeout=120)


def _start(repo, settings, source="startup", **env) -> str:
    """SessionStart: the text the model gets (hookSpecificOutput.additionalContext)."""
    proc = _hook(repo, settings, "SessionStart", {"source": source}, **env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "SessionStart"
    return out["additionalContext"]


def _sid(context: str) -> str:
    [sid] = re.findall(r"Your handoff session id is (sess_\w+)", context)
    return sid


def test_claude_code_hooks(repo, tmp_path):
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    settings = _install_claude(repo)
    coord = repo.session("coordinator", "release", "sess_coord")
    repo.ok("request", "--session", coord["session_id"], "--to", "reviewer", "--channel", "release",
            "-d", "Review the parser change", "--work", "work_parser")

    # session start: a session is opened for this clone, the brief becomes Claude's context
    env_file = tmp_path / "claude-env"
    context = _start(repo, settings, CLAUDE_ENV_FILE=str(env_file))
    sid = _sid(context)
    assert f"handoff brief for reviewer.{sid}" in context
    assert "handoff accept work_parser --session " + sid in context
    assert repo.j("session", "status", sid)["agent"] == "reviewer"
    assert env_file.read_text() == f"export HANDOFF_SESSION={sid} HANDOFF_SESSION_BY_HOOK={sid}\n"
    # a restart (or /clear, or resume) in the same clone resumes the same session
    assert _sid(_start(repo, settings, "clear", HANDOFF_SESSION=sid, HANDOFF_SESSION_BY_HOOK=sid)) == sid
    assert _sid(_start(repo, settings, "resume")) == sid

    # after a turn with nothing new: silence, Claude stops
    stop = _hook(repo, settings, "Stop", {"stop_hook_active": False})
    assert stop.returncode == 0 and stop.stdout.strip() == "", stop.stdout

    # something new arrives: announced once, as data, at the turn boundary
    msg = repo.j("send", "--session", coord["session_id"], "--channel", "release", "--to", f"reviewer.{sid}",
                 "-m", "also check the docs")
    stop = _hook(repo, settings, "Stop", {"stop_hook_active": False})
    out = json.loads(stop.stdout)
    assert out["decision"] == "block" and msg["id"] in out["reason"] and "not instructions" in out["reason"]
    again = _hook(repo, settings, "Stop", {"stop_hook_active": True})
    assert again.stdout.strip() == ""  # never re-announced
    # reading is not answering: the entry is still in the inbox
    assert msg["id"] in [e["id"] for e in repo.j("inbox", "--session", sid)["entries"]]
    # doctor agrees the hook scripts are in place
    c = {x["check"]: x for x in repo.j("doctor", "--session", sid)["checks"]}
    assert c["hooks (.claude/settings.json)"]["status"] == "ok"


def test_claude_code_gives_each_clone_its_own_session(clones):
    a, b = clones("a"), clones("b")
    ids = []
    for clone in (a, b):
        settings = _install_claude(clone)
        ids.append(_sid(_start(clone, settings)))
        assert _sid(_start(clone, settings)) == ids[-1]  # stable within the clone
    assert ids[0] != ids[1]
    a.git("push", "-q", "origin", "main")
    b.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    listed = {s["session_id"]: s for s in b.j("session", "list")["sessions"]}
    assert {listed[i]["peer_id"] for i in ids} == {f"reviewer.{i}" for i in ids}
    assert all(listed[i]["state"] == "active" for i in ids)


def test_claude_code_replaces_a_closed_session(repo):
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    settings = _install_claude(repo)
    coord = repo.session("coordinator", "release", "sess_coord")
    old = _sid(_start(repo, settings))
    repo.ok("request", "--session", coord["session_id"], "--to", f"reviewer.{old}", "--channel", "release",
            "-d", "Review the parser change", "--work", "work_parser")
    repo.j("send", "--session", coord["session_id"], "--channel", "release", "--to", f"reviewer.{old}", "-m", "hi")
    repo.ok("session", "close", old)

    # `session new --id` does not bring it back
    again = repo.h("session", "new", "--agent", "reviewer", "--channel", "release", "--id", old, "-o", "json")
    assert again.code == 3 and again.json["error"]["reason_code"] == "session_closed", again.out
    # the closed session's brief lists only commands that still work
    brief = repo.j("brief", "--session", old)
    assert brief["state"] == "closed" and brief["closed"]["do"][0] == "handoff session new --agent reviewer --channel release"
    assert brief["closed"]["do"][1] == f"handoff session new --agent reviewer --channel release --id {old} --reopen"
    commands = [c for part in ("inbox", "handoffs_to_me", "open_work") for row in brief[part] for c in row["do"]]
    assert commands and not any(c.split()[1] in ("accept", "reject", "send", "reply", "progress", "complete")
                                for c in commands), commands
    for c in commands:
        ran = repo.h(*shlex.split(c)[1:], "-o", "json")
        assert ran.code == 0, (c, ran.out)

    # the turn after the close: Claude is told once, and acts as a new session from then on
    stop = _hook(repo, settings, "Stop", {"stop_hook_active": False})
    reason = json.loads(stop.stdout)["reason"]
    new = re.findall(r"you now act as session (sess_\w+)", reason)[0]
    assert new != old and f"{old} was closed" in reason
    assert repo.j("session", "status", new)["state"] == "active"
    assert _hook(repo, settings, "Stop", {"stop_hook_active": False}).stdout.strip() == ""
    assert _sid(_start(repo, settings)) == new

    # or, closed before the harness starts again: the next SessionStart opens a new session, not the closed one
    repo.ok("session", "close", new)
    context = _start(repo, settings)
    newer = _sid(context)
    assert newer not in (old, new) and f"replaces session {new}, which is closed" in context
    # an id pinned with HANDOFF_SESSION is not replaced: the context says why, and lists no commands
    pinned = _start(repo, settings, HANDOFF_SESSION=old)
    assert "is closed" in pinned and "handoff accept" not in pinned and "$ handoff" not in pinned


def test_claude_code_hooks_stay_quiet_outside_handoff_repos(tmp_path):
    (tmp_path / "plain").mkdir()
    for script in ("handoff-session-start.sh", "handoff-after-turn.sh"):
        proc = subprocess.run([str(EXAMPLES / "claude-code" / "hooks" / script)], input="{}", capture_output=True,
                              text=True, env=dict(os.environ, CLAUDE_PROJECT_DIR=str(tmp_path / "plain"),
                                                  HANDOFF_SESSION="sess_x", HANDOFF="false"))
        assert proc.returncode == 0 and proc.stdout == ""


def test_codex_hooks_use_the_same_scripts(repo, tmp_path):
    """examples/codex/hooks.json: Codex runs each command with $SHELL -lc in the session's cwd, the hook
    input on stdin (no CLAUDE_PROJECT_DIR), and may give SessionStart a CODEX_ENV_FILE."""
    if not _has_watch(repo):
        pytest.skip("`handoff watch` is not in this build yet")
    shutil.copytree(EXAMPLES / "claude-code" / "hooks", repo.path / ".codex" / "hooks")
    hooks = json.loads((EXAMPLES / "codex" / "hooks.json").read_text())["hooks"]
    env_file = tmp_path / "codex-env"

    def run(event: str, payload: dict) -> subprocess.CompletedProcess:
        [group] = hooks[event]
        [hook] = group["hooks"]
        stdin = {"session_id": "019d036d-codex", "transcript_path": None, "cwd": str(repo.path),
                 "hook_event_name": event, "model": "gpt-5", "permission_mode": "default", **payload}
        return subprocess.run(["bash", "-c", hook["command"]], input=json.dumps(stdin), capture_output=True,
                              text=True, env=_env(repo, CODEX_ENV_FILE=str(env_file)), cwd=repo.path, timeout=120)

    coord = repo.session("coordinator", "general", "sess_coord")
    repo.ok("request", "--session", coord["session_id"], "--to", "codex", "--channel", "general",
            "-d", "Port the parser", "--work", "work_port")
    start = run("SessionStart", {"source": "startup"})
    context = json.loads(start.stdout)["hookSpecificOutput"]["additionalContext"]
    sid = _sid(context)
    assert f"handoff brief for codex.{sid}" in context and f"handoff accept work_port --session {sid}" in context
    assert env_file.read_text().startswith(f"export HANDOFF_SESSION={sid} ")
    assert (repo.path / ".git" / "handoff" / "codex-hooks-session").read_text().strip() == sid
    turn = {"turn_id": "t1", "stop_hook_active": False, "last_assistant_message": "done"}
    assert run("Stop", turn).stdout.strip() == ""
    msg = repo.j("send", "--session", coord["session_id"], "--channel", "general", "--to", f"codex.{sid}",
                 "-m", "ping")
    out = json.loads(run("Stop", turn).stdout)
    assert out["decision"] == "block" and msg["id"] in out["reason"]
    assert run("Stop", dict(turn, stop_hook_active=True)).stdout.strip() == ""


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


def test_shell_agent_refuses_to_watch_a_closed_session(repo):
    repo.session("shell-agent", "general", "sess_shell")
    repo.ok("session", "close", "sess_shell")
    proc = subprocess.run([str(EXAMPLES / "shell-agent" / "agent.sh")], cwd=repo.path, capture_output=True, text=True,
                          env=_env(repo, LIMIT="1", HANDOFF_SESSION="sess_shell"), timeout=120)
    assert proc.returncode == 3 and "session_closed" in proc.stderr and "--reopen" in proc.stderr, proc.stderr
