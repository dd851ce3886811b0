"""The README's own examples, run as a newcomer would: the Quick start in a shell, the Python API in Python.

If the README shows a command that fails (a renamed flag, a missing argument), this fails first.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, make_repo

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def block(heading: str, lang: str) -> str:
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert match, f"no ```{lang} block under '## {heading}'"
    return match.group(1)


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_readme_starts_with_the_two_commands():
    first = README.split("```", 2)[1].strip().splitlines()
    assert [line.split()[:2] for line in first] == [["make", "demo"], ["make", "test"]]


def test_quick_start_runs_as_written(tmp_path):
    repo = make_repo(tmp_path / "repo", init=False)
    script = "set -euo pipefail\n" + block("Quick start", "sh")
    proc = run(["bash", "-c", script], repo.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_api_example_runs_as_written(tmp_path):
    repo = make_repo(tmp_path / "repo", init=False)
    proc = run([sys.executable, "-c", block("Python API", "python")], repo.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "completed {'missing': 0}"
