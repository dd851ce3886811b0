"""The installed distribution: its name is ours (not PyPI's unrelated `handoff`), one version everywhere."""
from __future__ import annotations

import importlib.metadata as md
import tomllib

from conftest import ROOT

import handoff


def test_distribution_is_git_handoff_with_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "git-handoff"
    assert "version" in project["dynamic"]                 # read from handoff.__version__, nowhere else
    assert md.version("git-handoff") == handoff.__version__
    assert md.distribution("git-handoff").entry_points.select(group="console_scripts")["handoff"].value \
        == "handoff.faces.cli:run"


def test_no_text_tells_anyone_to_pip_install_plain_handoff():
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*"),
             *(ROOT / "handoff").rglob("*.py")]
    for path in texts:
        if path.is_file() and path.suffix in {".md", ".py", ".yml", ".yaml", ".toml", ".sh", ".json"}:
            text = path.read_text()
            for bad in ("pip install handoff", "pip install 'handoff[", 'pip install "handoff[',
                        "pipx install handoff"):
                assert bad not in text, f"{path.relative_to(ROOT)} says {bad!r}"
