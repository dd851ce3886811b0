"""Shared set-up for the lifecycle tests: a repo per work state, built once and copied per test."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from conftest import GIT_ENV, Repo, git, make_repo

CH = "dev"
THREAD = "thread_cycle"
W = "work_cycle"
A, B, C = "sess_a", "sess_b", "sess_c"
PA, PB, PC = "alpha.sess_a", "beta.sess_b", "gamma.sess_c"
PEER = {A: PA, B: PB, C: PC}
CAP = {"capability": {"id": "cap.review", "summary": "review the change", "outcome": "a verdict"}}


@contextlib.contextmanager
def isolated_env(tmp_path_factory):
    """The autouse per-test environment, for fixtures wider than one test."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    wanted = {"HOME": str(home), **GIT_ENV}
    saved = {k: os.environ.get(k) for k in [*wanted, "HANDOFF_SESSION", "HANDOFF_NOW"]}
    os.environ.update(wanted)
    os.environ.pop("HANDOFF_SESSION", None)
    os.environ.pop("HANDOFF_NOW", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def three_sessions(repo: Repo) -> None:
    repo.session("alpha", CH, A)
    repo.session("beta", CH, B)
    repo.session("gamma", CH, C)


def copy_repo(src: Path, dst: Path) -> Repo:
    shutil.copytree(src, dst, symlinks=True)
    return Repo(dst)


def snapshot(repo: Repo) -> tuple:
    """Everything a refused write must leave alone: event files, HEAD, the index and work tree status."""
    files = tuple(str(p.relative_to(repo.path)) for p in repo.event_files())
    return files, git(repo.path, "rev-parse", "HEAD").strip(), git(repo.path, "status", "--porcelain")


def commit_count(repo: Repo) -> int:
    return int(git(repo.path, "rev-list", "--count", "HEAD").strip())


def refuse(repo: Repo, args: list[str], reason: str, exit_code: int = 3, env: dict | None = None) -> dict:
    """Run a write that must be refused: exit code, reason_code, and nothing written or committed."""
    before = snapshot(repo)
    r = repo.h(*args, "-o", "json", env=env)
    assert r.code == exit_code, f"{args} -> {r.code}: {r.out}{r.err}"
    err = r.json["error"]
    assert err["reason_code"] == reason, err
    assert err["message"] and "hint" in err
    assert snapshot(repo) == before, "a refused write changed the repository"
    return err


def spec_args(spec: str, opener_id: str, *, work: str = W) -> list[str]:
    """``kind[:value]@sender`` -> the ``handoff send`` arguments for that message on ``work``.

    say/capability go to the sender's counterparty unless ``>peer`` names another (``say@a>c``).
    """
    what, _, who = spec.partition("@")
    sender, _, to_key = who.partition(">")
    sess = {"a": A, "b": B, "c": C}[sender]
    other = {"a": PB, "b": PA, "c": PA}[sender]
    if to_key:
        other = PEER[{"a": A, "b": B, "c": C}[to_key]]
    kind, _, value = what.partition(":")
    args = ["send", "-s", sess, "-c", CH, "--work", work, "--to", other, "--kind", kind]
    if kind == "say":
        body = {"text": f"note from {sender}"}
    elif kind == "capability":
        body = CAP
    elif kind == "receipt":
        body = {"status": value, "for_id": opener_id}
        if value in ("rejected", "duplicate", "expired", "unsupported"):
            body["reason_code"] = "busy"
    else:
        body = {"state": value, "message": f"{value} by {sender}"}
    return args + ["--body", json.dumps(body)]


def build_templates(root: Path) -> dict:
    """One repo per work state, all sharing the same opener (a -> b in THREAD)."""
    base = make_repo(root / "submitted")
    three_sessions(base)
    opened = base.j("send", "-s", A, "-c", CH, "-t", THREAD, "--to", PB, "--work", W, "-m", "please review",
                    "--trace-id", "trace_cycle")
    moves = {"working": ["progress", W, "-s", B], "needs_input": ["need-input", W, "-s", B, "-m", "which db?"],
             "completed": ["complete", W, "-s", B], "failed": ["fail", W, "-s", B, "-m", "broken"],
             "canceled": ["cancel", W, "-s", A, "-m", "not needed"]}
    paths = {"submitted": base.path}
    for state, args in moves.items():
        r = copy_repo(base.path, root / state)
        r.ok(*args)
        assert r.j("work", "lookup", "--work", W)["state"] == state
        paths[state] = r.path
    return {"paths": paths, "opener": opened["id"]}
