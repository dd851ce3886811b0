"""Shared fixtures: real temporary git repositories and the real CLI.

``Repo.h(...)`` runs the real command line in-process (the same ``main`` the
console script calls) for speed; ``Repo.proc(...)`` runs it as a separate
process where processes matter (concurrency, crashes, watchers).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HANDOFF_SESSION", raising=False)
    monkeypatch.delenv("HANDOFF_NOW", raising=False)


def git(cwd, *args, check=True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)

    @property
    def lines(self) -> list:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


class Repo:
    def __init__(self, path: Path):
        self.path = path

    def h(self, *args: str, env: dict | None = None, stdin: str | None = None) -> Result:
        """Run the CLI in-process against this repo.  A bug raises here (HANDOFF_DEBUG=1: the CLI's
        last-resort handler lets it through), so a test sees the traceback, not a one-line report."""
        from handoff.faces.cli import main
        out, err = io.StringIO(), io.StringIO()
        old_env = {}
        for k, v in {"HANDOFF_DEBUG": "1", **(env or {})}.items():
            old_env[k] = os.environ.get(k)
            os.environ[k] = v
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        cwd = os.getcwd()
        try:
            os.chdir(self.path)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            os.chdir(cwd)
            sys.stdin = old_stdin
            for k, v in old_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, **kw) -> Result:
        r = self.h(*args, **kw)
        assert r.code == 0, f"handoff {' '.join(args)} -> {r.code}\n{r.out}\n{r.err}"
        return r

    def j(self, *args: str, **kw):
        """Run with -o json, require success, return parsed JSON."""
        return self.ok(*args, "-o", "json", **kw).json

    def proc(self, *args: str, env: dict | None = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run the CLI as a real separate process."""
        full_env = dict(os.environ, **(env or {}))
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-m", "handoff", *args], cwd=self.path, capture_output=True,
                              text=True, env=full_env, timeout=timeout, **kw)

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.path, *args, check=check)

    def session(self, agent: str, channel: str = "general", sid: str | None = None, name: str | None = None) -> dict:
        args = ["session", "new", "--agent", agent, "--channel", channel]
        if sid:
            args += ["--id", sid]
        if name:
            args += ["--name", name]
        return self.j(*args)

    def event_files(self) -> list[Path]:
        return sorted((self.path / ".handoffs" / "events").rglob("*.yaml"))


def make_repo(path: Path, workspace: str = "test", init: bool = True) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.txt").write_text("project\n")
    git(path, "add", "README.txt")
    git(path, "commit", "-qm", "initial")
    repo = Repo(path)
    if init:
        repo.ok("init", "--workspace", workspace)
    return repo


@pytest.fixture
def repo(tmp_path) -> Repo:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def clones(tmp_path):
    """A bare remote and a factory of clones of it, each initialised for handoff."""
    bare = tmp_path / "remote.git"
    seed = make_repo(tmp_path / "seed")
    git(tmp_path, "clone", "-q", "--bare", str(seed.path), str(bare))

    def clone(name: str) -> Repo:
        dest = tmp_path / name
        git(tmp_path, "clone", "-q", str(bare), str(dest))
        return Repo(dest)

    clone.remote = bare
    return clone
