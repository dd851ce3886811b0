"""The AXME durable-handoff scenario (examples/axme-durable) with real processes and a real SIGKILL."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from support.watchproc import ROOT, cli_env

EXAMPLE = ROOT / "examples" / "axme-durable"


def _env() -> dict:
    return cli_env({"HANDOFF": f"{shlex.quote(sys.executable)} -m handoff", "BATCHES": "4"})


def _until(pred, what: str, timeout: float = 90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_b_killed_mid_work_resumes_from_checkpoint_and_a_learns_completed(repo, tmp_path):
    env = _env()
    b_log = tmp_path / "b1.log"
    with open(b_log, "w") as out:
        b = subprocess.Popen([sys.executable, str(EXAMPLE / "agent_b.py"), "--step-seconds", "0.3",
                              "--exit-when-idle"], cwd=repo.path, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    a = subprocess.Popen(["sh", str(EXAMPLE / "agent_a.sh"), "work_ho_0033", "120"], cwd=repo.path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _until(lambda: "batch 2/4" in b_log.read_text(), "B to checkpoint batch 2")
        os.killpg(b.pid, signal.SIGKILL)  # B and its watcher die without any chance to clean up
        b.wait(timeout=30)
        assert b.returncode == -signal.SIGKILL
        log1 = b_log.read_text()
        assert "accepted work_ho_0033" in log1 and "completed" not in log1
        work = repo.j("work", "status", "--work", "work_ho_0033")
        assert work["state"] == "working"
        saved = work["checkpoint"]["batch"]
        assert saved >= 2 and a.poll() is None  # A is still waiting

        b2 = subprocess.run([sys.executable, str(EXAMPLE / "agent_b.py"), "--step-seconds", "0.3",
                             "--exit-when-idle"], cwd=repo.path, env=env, capture_output=True, text=True, timeout=120)
        assert b2.returncode == 0, b2.stdout + b2.stderr
        lines = b2.stdout.splitlines()
        assert f"resume work_ho_0033 at batch {saved + 1}" in lines
        assert "accepted work_ho_0033" not in lines  # nothing redone that was already done
        assert lines[-1] == "completed work_ho_0033"

        out, err = a.communicate(timeout=120)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
        try:
            os.killpg(b.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert a.returncode == 0, err
    result = json.loads(out)
    assert result["wait_result"] == "completed" and result["state"] == "completed"
    assert result["result"] == {"batches": 4, "status": "processed"}
    # every batch checkpointed exactly once, in order, across the crash
    hist = repo.j("work", "status", "--work", "work_ho_0033")["history"]
    assert [h["status"] for h in hist][1:3] == ["accepted", "working"]
    progress = [e for e in repo.j("session", "events", "sess_agentb")["events"]
                if e["kind"] == "trace" and (e["body"].get("checkpoint") or {}).get("batch")]
    assert [e["body"]["checkpoint"]["batch"] for e in progress] == [1, 2, 3, 4]


@pytest.mark.slow
def test_run_sh_end_to_end(tmp_path):
    proc = subprocess.run(["sh", str(EXAMPLE / "run.sh"), str(tmp_path / "demo")], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resume work_ho_2026_0033 at batch" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("completed")
