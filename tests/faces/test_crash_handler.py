"""The CLI's last resort: a bug ends in one line on stderr and a saved traceback, never a bare traceback.

The bug is real: ``.git/handoff/hlc`` (the local clock file) replaced by a directory makes the clock's
``os.open`` raise IsADirectoryError, which no code expects.  The CLI runs as a separate process.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def _break_the_clock(repo) -> str:
    sid = repo.session("coordinator", "release")["session_id"]
    hlc = repo.path / ".git" / "handoff" / "hlc"
    if hlc.exists():
        hlc.unlink()
    (hlc / "not-a-file").mkdir(parents=True)
    return sid


def _saved(err: str) -> Path:
    m = re.search(r"traceback saved in (\S+)", err)
    assert m, err
    return Path(m.group(1))


def test_a_bug_prints_one_line_and_saves_the_traceback(repo):
    sid = _break_the_clock(repo)
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_DEBUG"}
    p = repo.proc("send", "--session", sid, "--channel", "release", "-m", "hello", env=env)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert "bug report" in p.stderr and "IsADirectoryError" in p.stderr and "HANDOFF_DEBUG=1" in p.stderr
    saved = _saved(p.stderr)
    assert saved.parent == repo.path / ".git" / "handoff" / "crash"
    text = saved.read_text()
    assert text.startswith("handoff send --session") and "Traceback (most recent call last)" in text
    assert "IsADirectoryError" in text
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""  # nothing in the work tree


def test_with_json_output_the_bug_is_a_json_error_with_reason_internal(repo):
    sid = _break_the_clock(repo)
    p = repo.proc("send", "--session", sid, "--channel", "release", "-m", "hello", "-o", "json")
    assert p.returncode == 1
    import json
    err = json.loads(p.stdout)["error"]
    assert err["reason_code"] == "internal"
    assert "IsADirectoryError" in err["message"]
    assert _saved(err["hint"]).is_file()
    assert "Traceback" not in p.stderr


def test_handoff_debug_lets_the_exception_through(repo):
    sid = _break_the_clock(repo)
    p = repo.proc("send", "--session", sid, "--channel", "release", "-m", "hello", env={"HANDOFF_DEBUG": "1"})
    assert p.returncode == 1
    assert "Traceback (most recent call last)" in p.stderr and "IsADirectoryError" in p.stderr
    assert not (repo.path / ".git" / "handoff" / "crash").exists()


def test_outside_a_repository_the_traceback_goes_to_the_temp_dir(tmp_path):
    import tempfile

    from handoff.faces.cli import crash
    assert crash.crash_dir(["status", "--repo", str(tmp_path / "nowhere")]) == Path(tempfile.gettempdir())
