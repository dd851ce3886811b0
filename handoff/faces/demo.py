"""``handoff demo``: one complete handoff between two agents, in a throwaway repository.

Every step is a real command line run through the real ``main`` in-process
(the same code the console script runs), printed as the user would type it,
followed by its (abridged) output.  Nothing is simulated: the events are real
files, committed by the real commit path, and ``git log`` shows them.
"""
from __future__ import annotations

import contextlib
import io
import json
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd

CHANNEL = "release"
COORD = "sess_coordinator"
REVIEW = "sess_reviewer"
WORK = "work_release_notes"
MAX_LINES = 14

CONTEXT = {
    "files_changed": ["README.md", "docs/install.md"],
    "decisions": ["pip install replaces the curl installer", "Python 3.11 is the minimum"],
    "next_steps": ["check every command in README.md still runs", "flag anything the changelog misses"],
}
CHECKPOINT = {"checked": ["README.md"], "next": "docs/install.md"}
RESULT = {"fixed": ["README.md: wrong flag in the quick start"], "verdict": "docs match the release"}


@dataclass
class Step:
    title: str
    argv: list[str]
    optional: bool = False  # a command another build may not have: skipped, not failed


def steps() -> list[Step]:
    ctx = json.dumps(CONTEXT, separators=(",", ":"))
    return [
        Step("Set up .handoffs/ in the repository (committed at once, nothing else touched)",
             ["init", "--workspace", "demo"]),
        Step("Open a session for each agent (each gets a peer id: <name>.<session>)",
             ["session", "new", "--agent", "coordinator", "--channel", CHANNEL, "--name", "release-coordinator",
              "--id", COORD]),
        Step("", ["session", "new", "--agent", "reviewer", "--channel", CHANNEL, "--name", "release-reviewer",
                  "--id", REVIEW]),
        Step("The coordinator hands work to any reviewer, with a context bundle",
             ["request", "--session", COORD, "--to", "reviewer", "--channel", CHANNEL,
              "-d", "Check the release docs for drift", "--context", ctx, "--work", WORK, "--deadline", "2h"]),
        Step("The reviewer's inbox (reading it changes nothing)", ["inbox", "--session", REVIEW]),
        Step("The reviewer accepts: the first reviewer session to answer owns the work",
             ["accept", WORK, "--session", REVIEW, "-m", "on it"]),
        Step("Progress with a checkpoint: a restarted reviewer resumes from here",
             ["progress", WORK, "--session", REVIEW, "-m", "README checked",
              "--checkpoint", json.dumps(CHECKPOINT, separators=(",", ":"))]),
        Step("What a fresh agent session reads first", ["brief", "--session", REVIEW], optional=True),
        Step("Done, with a result for the coordinator",
             ["complete", WORK, "--session", REVIEW, "-m", "docs match the release",
              "--result", json.dumps(RESULT, separators=(",", ":"))]),
        Step("The coordinator could have blocked on this until the work ended", ["wait", WORK, "--timeout", "30"],
             optional=True),
        Step("The coordinator's inbox now holds the outcome", ["inbox", "--session", COORD]),
        Step("The whole work unit: who, where, state, checkpoint, result", ["work", "lookup", "--work", WORK]),
        Step("Handoff metrics per agent pair", ["metrics"], optional=True),
        Step("Workspace counters", ["status"]),
    ]


def run_cli(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    """The real command line (``main``, the CLI's entry), in-process, with its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def abridge(text: str, limit: int = MAX_LINES) -> list[str]:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"… ({len(lines) - limit} more lines)"]


def shown(argv: list[str]) -> str:
    return "handoff " + " ".join(shlex.quote(a) for a in argv)


def _new_repo(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise HandoffError("invalid_argument", f"{target} is not empty",
                           hint="give --dir a new or empty directory")
    gitcmd.run(target, "init", "-q")
    if gitcmd.run(target, "var", "GIT_COMMITTER_IDENT", check=False).returncode != 0:
        # no git identity on this machine: give the throwaway repo one of its own
        gitcmd.run(target, "config", "user.name", "handoff demo")
        gitcmd.run(target, "config", "user.email", "demo@handoff.invalid")
    (target / "README.md").write_text("# demo project\n\nA throwaway repository made by `handoff demo`.\n")
    gitcmd.run(target, "add", "README.md")
    gitcmd.run(target, "commit", "-q", "-m", "initial commit")


def run(directory: str | None, *, machine: bool, say: Callable[[str], None],
        main: Callable[[list[str]], int]) -> dict:
    """Run the demo through ``main`` (the CLI's entry); ``say`` prints human narration (ignored in machine mode)."""
    kept = directory is not None
    if directory is not None:
        repo = Path(directory).expanduser().resolve()
    else:
        repo = Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    try:
        _new_repo(repo)
        return _run_steps(main, repo, kept, machine, say)
    finally:
        if not kept:
            shutil.rmtree(repo, ignore_errors=True)


def _run_steps(main: Callable[[list[str]], int], repo: Path, kept: bool, machine: bool, say: Callable[[str], None]) -> dict:
    say(f"A throwaway git repository: {repo}\n"
        "Two agents, a coordinator and a reviewer, hand work over in channel #release.\n")
    results: list[dict] = []
    outputs: dict[str, Any] = {}
    for step in steps():
        argv = step.argv + ["--repo", str(repo)] + (["-o", "json"] if machine else [])
        code, out, err = run_cli(main, argv)
        if step.optional and code == 2 and "No such command" in out + err:
            results.append({"command": shown(step.argv), "exit_code": code, "skipped": True})
            continue
        if step.title:
            say(f"# {step.title}")
        say(f"$ {shown(step.argv)}")
        for line in abridge(out or err):
            say(f"  {line}")
        say("")
        results.append({"command": shown(step.argv), "exit_code": code})
        if code != 0:
            raise HandoffError("demo_failed", f"`{shown(step.argv)}` exited {code}: {(err or out).strip()[:500]}",
                               hint="this is a bug in handoff; please report it with the output above")
        if machine and out.strip():
            outputs[" ".join(step.argv[:2])] = json.loads(out)
    log = gitcmd.out(repo, "log", "--oneline").splitlines()
    say("# Every write is its own commit, holding only .handoffs/ files")
    say("$ git log --oneline")
    for line in abridge("\n".join(log)):
        say(f"  {line}")
    say("")
    if kept:
        say(f"The repository is kept at {repo}; try `handoff --help` or `handoff work lookup --work {WORK} "
            f"--repo {repo}`.")
    else:
        say("The repository was removed. Keep one to explore with `handoff demo --dir PATH`.")
    work = (outputs.get("work lookup") or {}) if machine else {}
    return {
        "ok": True,
        "repo": str(repo),
        "kept": kept,
        "channel": CHANNEL,
        "sessions": [COORD, REVIEW],
        "work_id": WORK,
        "state": work.get("state"),
        "checkpoint": work.get("checkpoint"),
        "result": work.get("result"),
        "metrics": outputs.get("metrics"),  # None when this build has no `handoff metrics`
        "commits": len(log),
        "handoff_commits": sum(1 for line in log if line.split(" ", 1)[-1].startswith("handoff:")),
        "git_log": log,
        "steps": results,
    }
