"""Start-up: a read command imports only what it uses (``python -X importtime`` is the witness)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

# What a read command never imports, package by package (a third-party name, or a module of ours).
NOT_ON_READS = {
    "third party": ("git", "watchdog", "pydantic", "yaml", "multiprocessing", "concurrent"),
    "core": ("handoff.core.yaml.strict", "handoff.core.leases", "handoff.core.deadlines", "handoff.core.delivery",
             "handoff.core.archive", "handoff.core.compaction"),
    "views": ("handoff.views.brief", "handoff.views.metrics", "handoff.views.report", "handoff.views.html",
              "handoff.views.audit"),
    "git": ("handoff.git.commit", "handoff.git.tree", "handoff.git.revision", "handoff.git.hooks",
            "handoff.git.commits", "handoff.git.transfer"),
    "app": ("handoff.app.watch", "handoff.app.watchfs", "handoff.app.verify", "handoff.app.sync",
            "handoff.app.doctor", "handoff.app.activity", "handoff.app.init", "handoff.app.compact"),
    "faces": ("handoff.faces.mcp", "handoff.faces.demo", "handoff.faces.cli.work", "handoff.faces.cli.session",
              "handoff.faces.cli.core", "handoff.faces.cli.durable", "handoff.faces.cli.review",
              "handoff.faces.cli.insight", "handoff.faces.cli.agents", "handoff.faces.cli.compact"),
}
NEVER_ON_READS = tuple(name for names in NOT_ON_READS.values() for name in names)


def imported(repo, *args: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "handoff", *args], cwd=repo.path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mods = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return mods


def heavy(mods: set[str], roots=NEVER_ON_READS) -> list[str]:
    return sorted(m for m in mods if any(m == r or m.startswith(r + ".") for r in roots))


def test_read_commands_import_only_what_they_use(repo):
    s = repo.session("reader", "general", "sess_reader")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "hello")
    for args in (("inbox", "--session", "sess_reader", "-o", "json"), ("status", "-o", "json"),
                 ("threads", "list", "--channel", "general", "-o", "json")):
        mods = imported(repo, *args)
        roots = NEVER_ON_READS if args[0] != "status" else tuple(r for r in NEVER_ON_READS if r != "handoff.faces.cli.core")
        assert heavy(mods, roots) == [], args
        assert "handoff.index" in mods  # answered from the index


def test_send_imports_no_gitpython_nor_watchdog(repo):
    repo.session("writer", "general", "sess_writer")
    mods = imported(repo, "send", "--session", "sess_writer", "--channel", "general", "-m", "hi", "-o", "json")
    assert heavy(mods, ("git", "watchdog", "pydantic", "handoff.app.watchfs", "handoff.git.transfer")) == []


def test_only_sync_imports_gitpython(repo):
    """GitPython (``git``, ~45 ms to import) serves ``sync``'s push and fetch alone: no read, no ordinary
    write, not even ``log``'s history walk (plumbing: docs/PERFORMANCE.md) imports it."""
    s = repo.session("reader", "general", "sess_reader")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "hello")
    repo.session("worker", "general", "sess_worker")
    wid = repo.j("request", "--session", s["session_id"], "--to", "worker", "--channel", "general",
                 "-d", "a task")["handoff_id"]
    no_gitpython = ("git", "handoff.git.transfer")
    for args in (("inbox", "--session", "sess_reader"), ("status",), ("status", wid), ("peers", "general"),
                 ("threads", "list", "--channel", "general"), ("channels",), ("list",), ("brief", "--session",
                 "sess_reader"), ("log",), ("metrics",), ("verify",), ("report",),
                 ("session", "new", "--agent", "other", "--channel", "general"),
                 ("accept", wid, "--session", "sess_worker")):
        mods = imported(repo, *args, "-o", "json")
        assert heavy(mods, no_gitpython) == [], args
    bare = repo.path.parent / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(bare)], cwd=repo.path, check=True)
    assert "git" in imported(repo, "sync", "-o", "json")  # the witness that it is used for real


def test_command_homes_match_the_registrations():
    from handoff.faces import cli
    cli.load_all()
    found = {}

    def walk(app, prefix=""):
        for info in app.registered_commands:
            found[f"{prefix}{info.name}"] = info.callback.__module__
        for group in app.registered_groups:
            walk(group.typer_instance, f"{prefix}{group.name} ")

    walk(cli.app)
    for name, home in cli.COMMAND_HOMES.items():
        assert found.get(name) == f"handoff.faces.cli.{home}", name
    for name, module in found.items():
        if module.rsplit(".", 1)[-1] in ("core", "messages", "session", "work"):
            assert name in cli.COMMAND_HOMES, f"add {name!r} to COMMAND_HOMES"


def test_plain_values_parse_as_typer_would(repo):
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "--thread", "thread_abc", "-m", "x")
    ok = repo.j("threads", "messages", "--channel", "general", "--thread", "thread_abc", "--limit", "1")
    assert len(ok["messages"]) == 1
    bad = repo.h("threads", "messages", "--channel", "general", "--thread", "thread_abc", "--limit", "x", "-o", "json")
    assert bad.code == 2 and "valid integer" in bad.json["error"]["message"]
    two = repo.j("session", "new", "--agent", "b", "--channel", "general", "--channel", "other")
    assert two["channels"] == ["general", "other"]
