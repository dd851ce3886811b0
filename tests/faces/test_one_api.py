"""One API under every face: the same scenario through the Python API, the CLI and the MCP server.

Three fresh git repositories, one per face, each driven only through its face: ``handoff.Handoff``
in-process, the real command line (``handoff ... -o json``, in-process through ``cli.main``) and the
real MCP server (``python -m handoff mcp`` over stdio, a real MCP client).  Each step's answer is put
through what the MCP server does to every result (``mcp.prune`` and ``mcp.mark_untrusted``: fewer
fields, agent text renamed) and normalised (ids, times, shas, the repository path, durations); the
three lists of answers must then be equal, step by step.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest
from conftest import ROOT, make_repo

anyio = pytest.importorskip("anyio")
pytest.importorskip("mcp")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from handoff import Handoff  # noqa: E402
from handoff.faces.mcp import NOTICE, mark_untrusted, prune  # noqa: E402

CH = "release"
CONTEXT = {"files_changed": ["README.md"], "next_steps": ["check the docs"]}
CHECKPOINT = {"done": ["README.md"]}
RESULT = {"ok": True}

# Each step: (name, Python API call, CLI argv, (MCP tool, arguments), the key holding the list the CLI and
# MCP wrap a list-returning API call's answer in; the command may add context keys beside it).
# ``a``/``b`` are the two sessions' ids in that face's repository.  The MCP tools take fewer options
# than the commands; a step uses only what all three faces offer.
STEPS = [
    ("send",
     lambda hf, a, b: hf.session(a).send(CH, text="Release on Friday", thread="thread_plan"),
     lambda a, b: ["send", "-s", a, "-c", CH, "-t", "thread_plan", "-m", "Release on Friday"],
     lambda a, b: ("send", {"session": a, "channel": CH, "thread": "thread_plan", "text": "Release on Friday"}),
     None),
    ("request",
     lambda hf, a, b: hf.session(a).request("reviewer", CH, "Check the release docs", context=CONTEXT,
                                            work="work_docs"),
     lambda a, b: ["request", "-s", a, "--to", "reviewer", "-c", CH, "-d", "Check the release docs",
                   "--context", json.dumps(CONTEXT), "--work", "work_docs"],
     lambda a, b: ("request", {"session": a, "to": "reviewer", "channel": CH, "description": "Check the release docs",
                               "context": CONTEXT, "work": "work_docs"}),
     None),
    ("inbox of the reviewer",
     lambda hf, a, b: hf.session(b).inbox(),
     lambda a, b: ["inbox", "-s", b],
     lambda a, b: ("inbox", {"session": b}),
     None),
    ("handoffs pending",
     lambda hf, a, b: hf.handoffs(to="reviewer", status="pending"),
     lambda a, b: ["list", "--to", "reviewer", "--status", "pending"],
     lambda a, b: ("list", {"to": "reviewer", "status": "pending"}),
     "handoffs"),
    ("accept",
     lambda hf, a, b: hf.session(b).accept("work_docs", "on it"),
     lambda a, b: ["accept", "work_docs", "-s", b, "-m", "on it"],
     lambda a, b: ("accept", {"session": b, "handoff_id": "work_docs", "message": "on it"}),
     None),
    ("claim",
     lambda hf, a, b: hf.session(b).claim("work_docs", "10m"),
     lambda a, b: ["claim", "work_docs", "-s", b, "--lease", "10m"],
     lambda a, b: ("claim", {"session": b, "handoff_id": "work_docs", "lease": "10m"}),
     None),
    ("heartbeat",
     lambda hf, a, b: hf.session(b).heartbeat("work_docs", "20m"),
     lambda a, b: ["heartbeat", "work_docs", "-s", b, "--lease", "20m"],
     lambda a, b: ("heartbeat", {"session": b, "handoff_id": "work_docs", "lease": "20m"}),
     None),
    ("progress",
     lambda hf, a, b: hf.session(b).progress("work_docs", "README checked", checkpoint=CHECKPOINT),
     lambda a, b: ["progress", "work_docs", "-s", b, "-m", "README checked", "--checkpoint", json.dumps(CHECKPOINT)],
     lambda a, b: ("progress", {"session": b, "handoff_id": "work_docs", "message": "README checked",
                                "checkpoint": CHECKPOINT}),
     None),
    ("brief of the reviewer",
     lambda hf, a, b: hf.session(b).brief(),
     lambda a, b: ["brief", "-s", b],
     lambda a, b: ("brief", {"session": b}),
     None),
    ("release",
     lambda hf, a, b: hf.session(b).release("work_docs"),
     lambda a, b: ["release", "work_docs", "-s", b],
     lambda a, b: ("release", {"session": b, "handoff_id": "work_docs"}),
     None),
    ("complete",
     lambda hf, a, b: hf.session(b).complete("work_docs", "docs match", result=RESULT),
     lambda a, b: ["complete", "work_docs", "-s", b, "-m", "docs match", "--result", json.dumps(RESULT)],
     lambda a, b: ("complete", {"session": b, "handoff_id": "work_docs", "message": "docs match", "result": RESULT}),
     None),
    ("wait",
     lambda hf, a, b: hf.wait("work_docs", 5, until_input=True),
     lambda a, b: ["wait", "work_docs", "--timeout", "5", "--until-input"],
     lambda a, b: ("wait", {"handoff_id": "work_docs", "timeout": 5}),
     None),
    ("inbox of the coordinator",
     lambda hf, a, b: hf.session(a).inbox(),
     lambda a, b: ["inbox", "-s", a],
     lambda a, b: ("inbox", {"session": a}),
     None),
    ("work lookup",
     lambda hf, a, b: hf.work("work_docs"),
     lambda a, b: ["work", "lookup", "--work", "work_docs"],
     lambda a, b: ("work", {"work_id": "work_docs"}),
     None),
    ("handoff status",
     lambda hf, a, b: hf.handoff("work_docs"),
     lambda a, b: ["status", "work_docs"],
     lambda a, b: ("status", {"handoff_id": "work_docs"}),
     None),
    ("work list",
     lambda hf, a, b: hf.work_list(state="completed", session=b),
     lambda a, b: ["work", "list", "--state", "completed", "--session", b],
     lambda a, b: ("work", {"state": "completed", "session": b}),
     "work"),
    ("thread messages",
     lambda hf, a, b: hf.messages(CH, thread="thread_plan", limit=20),
     lambda a, b: ["threads", "messages", "-c", CH, "-t", "thread_plan", "--limit", "20"],
     lambda a, b: ("threads", {"channel": CH, "thread": "thread_plan"}),
     "messages"),
    ("metrics",
     lambda hf, a, b: hf.metrics(),
     lambda a, b: ["metrics"],
     lambda a, b: ("metrics", {}),
     None),
    ("log of the work",
     lambda hf, a, b: hf.log(work="work_docs"),
     lambda a, b: ["log", "--work", "work_docs"],
     lambda a, b: ("log", {"work": "work_docs"}),
     None),
    ("verify",
     lambda hf, a, b: hf.verify(all=True),
     lambda a, b: ["verify", "--all"],
     lambda a, b: ("verify", {"all": True}),
     None),
    ("request with a deadline",
     lambda hf, a, b: hf.session(a).request("reviewer", CH, "Sign the release", work="work_late", deadline="1s"),
     lambda a, b: ["request", "-s", a, "--to", "reviewer", "-c", CH, "-d", "Sign the release", "--work", "work_late",
                   "--deadline", "1s"],
     lambda a, b: ("request", {"session": a, "to": "reviewer", "channel": CH, "description": "Sign the release",
                               "work": "work_late", "deadline": "1s"}),
     None),
    ("sweep, dry run",  # (after the deadline passed: run_face sleeps before this step)
     lambda hf, a, b: hf.session(a).sweep(dry_run=True),
     lambda a, b: ["sweep", "-s", a, "--dry-run"],
     lambda a, b: ("sweep", {"session": a, "dry_run": True}),
     None),
    ("sweep",
     lambda hf, a, b: hf.session(a).sweep(),
     lambda a, b: ["sweep", "-s", a],
     lambda a, b: ("sweep", {"session": a}),
     None),
    ("metrics at the end",
     lambda hf, a, b: hf.metrics(CH),
     lambda a, b: ["metrics", "-c", CH],
     lambda a, b: ("metrics", {"channel": CH}),
     None),
]
AFTER_DEADLINE = "sweep, dry run"


def _pause(name: str) -> None:
    if name == AFTER_DEADLINE:
        time.sleep(1.2)  # past work_late's 1 s deadline


# ------------------------------------------------------------------ faces


def run_api(repo) -> list:
    hf = Handoff(repo.path)
    a = hf.open_session("coordinator", [CH]).opened
    b = hf.open_session("reviewer", [CH], name="release-reviewer").opened
    out = [("session new", a), ("session new", b)]
    for name, api, _cli, _mcp, wrap in STEPS:
        _pause(name)
        out.append((name, api(hf, a["session_id"], b["session_id"])))
    return out


def run_cli(repo) -> list:
    a = repo.j("session", "new", "--agent", "coordinator", "--channel", CH)
    b = repo.j("session", "new", "--agent", "reviewer", "--channel", CH, "--name", "release-reviewer")
    out = [("session new", a), ("session new", b)]
    for name, _api, cli, _mcp, wrap in STEPS:
        _pause(name)
        data = repo.j(*cli(a["session_id"], b["session_id"]))
        out.append((name, data[wrap] if wrap else data))
    return out


def run_mcp(repo) -> list:
    env = {k: v for k, v in os.environ.items() if k.startswith(("GIT_", "HOME", "PATH", "LANG", "LC_"))}
    env["PYTHONPATH"] = str(ROOT)
    params = StdioServerParameters(command=sys.executable, args=["-m", "handoff", "mcp", "--repo", str(repo.path)],
                                   env=env, cwd=str(repo.path))

    async def call(client, tool, args):
        r = await client.call_tool(tool, args)
        assert not r.is_error, f"{tool} -> {r.content[0].text}"
        data = json.loads(r.content[0].text)
        assert data.pop("notice") == NOTICE
        return data

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            a = await call(client, "session_new", {"agent": "coordinator", "channel": CH})
            b = await call(client, "session_new", {"agent": "reviewer", "channel": CH, "name": "release-reviewer"})
            out = [("session new", a), ("session new", b)]
            for name, _api, _cli, mcp_step, wrap in STEPS:
                _pause(name)
                tool, args = mcp_step(a["session_id"], b["session_id"])
                data = await call(client, tool, args)
                out.append((name, data[wrap] if wrap else data))
            return out

    return anyio.run(main)


# -------------------------------------------------------------- normalise

TOKEN = re.compile(r"\b(?:sess|msg|work|thread|direct|trace|evt|ev)_[0-9a-z_]+")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
SHA = re.compile(r"\b[0-9a-f]{40}\b")
HLC = re.compile(r"\b\d{16}-\d{5}\b")
FIGURES = ("_s", "_ms")  # durations measured on the clock: differ from run to run


def normalise(answers: list, repo, *, as_mcp: bool = True) -> list:
    """The answers as the MCP server gives them (``as_mcp``: put them through what it does to a result),
    with run-specific values replaced by stable names (each distinct id by its rank of first appearance)."""
    names: dict[str, str] = {}

    def name_of(m: re.Match) -> str:
        token = m.group(0)
        if token in ("work_docs", "work_late", "thread_plan"):
            return token
        return names.setdefault(token, f"<{token.split('_')[0]}{len(names) + 1}>")

    def walk(v, key=""):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and key.endswith(FIGURES):
            return "<duration>"
        if isinstance(v, str):
            v = v.replace(str(repo.path), "<repo>")
            v = TIME.sub("<time>", v)
            v = HLC.sub("<hlc>", SHA.sub("<sha>", v))
            return TOKEN.sub(name_of, v)
        return v

    def mcp_view(data):
        data = json.loads(json.dumps(data))  # (JSON, as the CLI prints it and the MCP client reads it)
        return mark_untrusted(prune(data)) if as_mcp else data

    return [(name, walk(mcp_view(data))) for name, data in answers]


def test_the_python_api_the_cli_and_mcp_answer_one_scenario_alike(tmp_path):
    faces = {"api": run_api, "cli": run_cli, "mcp": run_mcp}
    answers = {}
    for face, run in faces.items():
        repo = make_repo(tmp_path / face)
        answers[face] = normalise(run(repo), repo, as_mcp=face != "mcp")
    api, cli, mcp = answers["api"], answers["cli"], answers["mcp"]
    assert [n for n, _ in api] == [n for n, _ in cli] == [n for n, _ in mcp]
    for (name, a), (_, c), (_, m) in zip(api, cli, mcp):
        assert a == c, f"{name}: the Python API and the CLI differ"
        assert a == m, f"{name}: the Python API and MCP differ"
    by_name = dict(api)
    # (the scenario did what it says: a guard against three faces agreeing on nothing)
    assert by_name["work lookup"]["state"] == "completed"
    assert by_name["wait"]["wait_result"] == "completed"
    assert by_name["verify"]["ok"] is True
    assert [w["work_id"] for w in by_name["sweep"]["swept"]] == ["work_late"]
    assert by_name["metrics"]["totals"]["completed"] == 1
    assert by_name["log of the work"]["count"] >= 5


# The verbs the MCP server leaves to the command line (rarer, or for people): the Python API and the
# CLI still answer them alike.  (name, Python API call, CLI argv, key of the CLI's list or None)
CLI_ONLY = [
    ("session status", lambda hf, a, b: hf.session(b).status(), lambda a, b: ["session", "status", b], None),
    ("session history", lambda hf, a, b: hf.session(a).history(), lambda a, b: ["session", "history", a], None),
    ("session events", lambda hf, a, b: hf.session(b).events(3), lambda a, b: ["session", "events", b, "--last", "3"],
     None),
    ("session list", lambda hf, a, b: hf.sessions(), lambda a, b: ["session", "list"], "sessions"),
    ("channels", lambda hf, a, b: hf.channels(), lambda a, b: ["channels"], "channels"),
    ("peers", lambda hf, a, b: hf.peers(CH), lambda a, b: ["peers", CH], "peers"),
    ("threads", lambda hf, a, b: hf.threads(CH), lambda a, b: ["threads", "list", "-c", CH], "threads"),
    ("thread", lambda hf, a, b: hf.thread(CH, "thread_plan"), lambda a, b: ["threads", "show", "-c", CH, "-t",
                                                                            "thread_plan"], None),
    ("direct room", lambda hf, a, b: hf.session(a).resolve_direct(CH, "release-reviewer." + b),
     lambda a, b: ["directs", "resolve", "-c", CH, "-s", a, "--peer", "release-reviewer." + b], None),
    ("directs", lambda hf, a, b: hf.directs(CH, a), lambda a, b: ["directs", "list", "-c", CH, "-s", a], "directs"),
    ("report", lambda hf, a, b: hf.report(markdown=True), lambda a, b: ["report", "--markdown"], None),
    ("status", lambda hf, a, b: hf.status(), lambda a, b: ["status"], None),
    ("close by another session of the agent",
     lambda hf, a, b: hf.session(a).close(by=hf.open_session("coordinator", [CH], session_id="sess_c2").session_id),
     lambda a, b: ["session", "close", a, "--session", "sess_c2"], None),  # (the CLI opens sess_c2 first)
]


def test_the_python_api_answers_the_cli_only_verbs_as_the_cli_does(tmp_path):
    api_repo, cli_repo = make_repo(tmp_path / "api"), make_repo(tmp_path / "cli")
    hf = Handoff(api_repo.path)
    # (chosen ids: some lists sort by session id, which must not be left to chance)
    a = hf.open_session("coordinator", [CH], session_id="sess_coord").session_id
    b = hf.open_session("reviewer", [CH], name="release-reviewer", session_id="sess_review").session_id
    hf.session(a).send(CH, text="hello", thread="thread_plan")
    hf.session(a).send(CH, text="just us", surface="direct", to="release-reviewer." + b)
    ca = cli_repo.session("coordinator", CH, sid="sess_coord")["session_id"]
    cb = cli_repo.session("reviewer", CH, sid="sess_review", name="release-reviewer")["session_id"]
    cli_repo.j("send", "-s", ca, "-c", CH, "-t", "thread_plan", "-m", "hello")
    cli_repo.j("send", "-s", ca, "-c", CH, "--surface", "direct", "--to", "release-reviewer." + cb, "-m", "just us")
    api_answers, cli_answers = [], []
    for name, api, cli, wrap in CLI_ONLY:
        api_answers.append((name, api(hf, a, b)))
        if name.startswith("close"):
            cli_repo.j("session", "new", "--agent", "coordinator", "--channel", CH, "--id", "sess_c2")
        data = cli_repo.j(*cli(ca, cb))
        cli_answers.append((name, data[wrap] if wrap else data))
    for (name, x), (_, y) in zip(normalise(api_answers, api_repo, as_mcp=False),
                                 normalise(cli_answers, cli_repo, as_mcp=False)):
        assert x == y, f"{name}: the Python API and the CLI differ:\n{json.dumps(x)}\n{json.dumps(y)}"
    assert dict(api_answers)["close by another session of the agent"]["state"] == "closed"
    assert dict(api_answers)["direct room"]["exists"] is True
