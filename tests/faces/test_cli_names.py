"""A newcomer's first hour (issue 16): --version, shell completion, the work id first and bare,
--idempotency-key, and help examples one per line.  Everything runs the real command line."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest
import typer.main
from conftest import ROOT

import handoff
from handoff.faces import cli


def run(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """The CLI as its own process (what a shell runs)."""
    full = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=120, cwd=cwd)


def commands() -> dict[str, object]:
    """Every leaf command, by its full name ("work lookup"), as Click sees it."""
    cli.load_all()
    out: dict[str, object] = {}

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, f"{prefix}{name} ")
            else:
                out[f"{prefix}{name}"] = cmd

    walk(typer.main.get_command(cli.app), "")
    return out


# ------------------------------------------------------------------ --version


def test_version_prints_the_package_version_without_loading_typer(tmp_path):
    proc = run("-X", "importtime", "-m", "handoff", "--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"handoff {handoff.__version__}\n"
    mods = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}
    assert "handoff.faces.cli.rootopts" in mods
    loaded = sorted(m for m in mods if m.split(".")[0] in ("typer", "click", "yaml", "pydantic", "git")
                    or m.startswith(("handoff.app", "handoff.index", "handoff.faces.cli.common")))
    assert loaded == []


def test_version_is_listed_in_help_and_answered_in_process(repo):
    assert "--version" in repo.ok("--help").out
    assert repo.ok("--version").out == f"handoff {handoff.__version__}\n"
    bad = repo.h("--version", "extra", "-o", "json")
    assert bad.code == 2 and bad.json["error"]["reason_code"] == "usage"


def test_doctor_reports_the_version(repo):
    data = repo.h("doctor", "-o", "json").json
    assert data["version"] == handoff.__version__
    assert repo.h("doctor").out.splitlines()[0] == f"handoff {handoff.__version__}"


# ----------------------------------------------------------------- completion


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o default -F _handoff_completion handoff"),
                                           ("zsh", "compdef _handoff_completion handoff"),
                                           ("fish", "complete --command handoff")])
def test_show_completion_prints_the_script_for_the_named_shell(tmp_path, shell, marker):
    proc = run("-m", "handoff", "--show-completion", shell, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_HANDOFF_COMPLETE" in proc.stdout and marker in proc.stdout


def test_show_completion_refuses_a_shell_it_cannot_serve(repo):
    bad = repo.h("--show-completion", "tcsh", "-o", "json")
    assert bad.code == 2 and "tcsh" in bad.json["error"]["message"]


def test_install_completion_writes_the_script_and_sources_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = run("-m", "handoff", "--install-completion", "bash", env={"HOME": str(home)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    script = home / ".bash_completions" / "handoff.sh"
    assert "_HANDOFF_COMPLETE" in script.read_text()
    assert str(script.relative_to(home)) in (home / ".bashrc").read_text()


def complete_bash(line: str, cwd) -> list[str]:
    """What bash's completion function gets back for ``line`` (the word being typed is the last)."""
    words = line.split(" ")
    proc = run("-m", "handoff", env={"_HANDOFF_COMPLETE": "complete_bash", "COMP_WORDS": line,
                                     "COMP_CWORD": str(len(words) - 1)}, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_protocol_completes_commands_subcommands_and_options(tmp_path):
    assert complete_bash("handoff wo", tmp_path) == ["work"]
    assert complete_bash("handoff work lo", tmp_path) == ["lookup"]
    assert complete_bash("handoff session ne", tmp_path) == ["new"]
    assert complete_bash("handoff accept x --idem", tmp_path) == ["--idempotency-key"]
    assert "--id" not in complete_bash("handoff accept x --", tmp_path)  # (the hidden alias is not offered)


def test_completion_protocol_for_zsh(tmp_path):
    proc = run("-m", "handoff", env={"_HANDOFF_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "handoff wo"},
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "work" in proc.stdout


# ------------------------------------------------------- the work id, first


WORK_ID_COMMANDS = {"work lookup", "work status", "status", "accept", "reject", "progress", "need-input", "reply",
                    "complete", "fail", "cancel", "claim", "heartbeat", "release", "wait", "approve", "deny"}


def test_every_command_on_a_work_unit_takes_the_id_first():
    found = {name for name, cmd in commands().items()
             if any(p.name == "handoff_id" for p in cmd.params)}  # type: ignore[attr-defined]
    assert found == WORK_ID_COMMANDS
    for name, cmd in commands().items():
        params = [p for p in cmd.params if p.param_type_name == "argument"]  # type: ignore[attr-defined]
        if name in WORK_ID_COMMANDS:
            assert params[0].name == "handoff_id", name


@pytest.mark.parametrize("name", sorted(WORK_ID_COMMANDS))
def test_the_id_and_the_old_flag_disagreeing_is_a_usage_error(repo, name):
    extra = {"reject": ["--reason", "busy"], "deny": ["--reason", "no"], "reply": ["-m", "x"]}.get(name, [])
    r = repo.h(*name.split(), "work_a", "--work", "work_b", *extra, "-o", "json")
    assert r.code == 2, r.out + r.err
    err = r.json["error"]
    assert err["reason_code"] == "conflicting_arguments" and "work_a" in err["message"] and "work_b" in err["message"]
    human = repo.h(*name.split(), "work_a", "-w", "work_b", *extra)
    assert human.code == 2 and "(conflicting_arguments)" in human.err
    usage = cmd_usage(name)
    assert "{WORK_ID}" in usage if name != "status" else "[WORK_ID]" in usage
    assert "--work" not in cmd_options(name)  # the alias works but is not shown as an option


def cmd_usage(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([*name.split(), "--help"]) == 0
    return out.getvalue()


def cmd_options(name: str) -> str:
    return cmd_usage(name).split("\nOptions:", 1)[1]


def test_a_missing_work_id_is_a_usage_error(repo):
    for name in ("work lookup", "accept", "wait"):
        r = repo.h(*name.split(), "-o", "json")
        assert r.code == 2 and r.json["error"]["message"] == "Missing argument 'WORK_ID'.", name
    assert repo.ok("status", "-o", "json").json.get("sessions") is not None  # status alone: the counters


def test_each_work_command_takes_the_id_bare_and_as_work(repo):
    a = repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    bob, alice = ("--session", "sess_bob"), ("--session", "sess_alice")

    def open_(work):
        repo.j("request", *alice, "--to", b["peer_id"], "--channel", "general", "-d", "do it", "--work", work)

    open_("work_one")
    for how in (["work_one"], ["--work", "work_one"], ["-w", "work_one"], ["work_one", "--work", "work_one"]):
        assert repo.j("work", "lookup", *how)["work_id"] == "work_one"
        assert repo.j("work", "status", *how)["state"] == "submitted"
        assert repo.j("status", *how)["handoff_id"] == "work_one"
    assert repo.j("accept", "--work", "work_one", *bob)["work"]["state"] == "working"
    assert repo.j("progress", "work_one", *bob, "-m", "half")["work"]["state"] == "working"
    assert repo.j("need-input", "--work", "work_one", *bob, "-m", "which db?")["work"]["state"] == "needs_input"
    assert repo.j("reply", "-w", "work_one", *alice, "-m", "staging")["work"]["state"] == "working"
    assert repo.j("claim", "--work", "work_one", *bob)["lease"]["holder"] == b["peer_id"]
    assert repo.j("heartbeat", "work_one", *bob)["lease"]["holder"] == b["peer_id"]
    assert repo.j("release", "--work", "work_one", *bob)["lease"]["holder"] is None
    assert repo.j("complete", "--work", "work_one", *bob, "--result", '{"ok": true}')["work"]["state"] == "completed"
    assert repo.j("wait", "work_one")["wait_result"] == "completed"
    assert repo.j("wait", "--work", "work_one")["wait_result"] == "completed"

    open_("work_two")
    assert repo.j("reject", "--work", "work_two", *bob, "--reason", "busy")["work"]["state"] == "failed"
    open_("work_three")
    assert repo.j("accept", "work_three", *bob)["work"]["state"] == "working"
    assert repo.j("fail", "--work", "work_three", *bob, "-m", "no credentials")["work"]["state"] == "failed"
    open_("work_four")
    assert repo.j("cancel", "--work", "work_four", *alice)["work"]["state"] == "canceled"
    assert a["peer_id"] != b["peer_id"]


# ------------------------------------------------------- --idempotency-key


def test_idempotency_key_replays_and_id_is_its_hidden_alias(repo):
    repo.session("alice", sid="sess_alice")
    b = repo.session("bob", sid="sess_bob")
    req = ("request", "--session", "sess_alice", "--to", b["peer_id"], "--channel", "general", "-d", "do it")
    first = repo.j(*req, "--idempotency-key", "retry-1")
    files = repo.event_files()
    assert first["handoff_id"] == "work_retry-1"  # (the work id follows the key, so a retry names the same unit)
    again = repo.j(*req, "--idempotency-key", "retry-1")
    old = repo.j(*req, "--id", "retry-1")  # old scripts
    assert again["handoff_id"] == old["handoff_id"] == first["handoff_id"]
    assert repo.event_files() == files  # nothing written twice
    both = repo.h(*req, "--id", "retry-1", "--idempotency-key", "retry-2", "-o", "json")
    assert both.code == 2 and both.json["error"]["reason_code"] == "conflicting_arguments"
    assert repo.h(*req, "--idempotency-key", "retry-1", "--id", "retry-1").code == 0


def test_session_new_id_still_names_the_session(repo):
    assert repo.j("session", "new", "--agent", "a", "--channel", "general", "--id", "sess_named")["session_id"] \
        == "sess_named"
    assert "--id" in cmd_options("session new")


def test_write_commands_show_the_key_and_hide_the_alias():
    writes = [name for name, cmd in commands().items()
              if any(p.name == "given_id" for p in cmd.params)]  # type: ignore[attr-defined]
    assert {"send", "request", "accept", "complete", "claim", "sweep", "session close"} <= set(writes)
    for name in writes:
        opts = cmd_options(name)
        assert "--idempotency-key" in opts, name
        assert not any(line.strip().startswith("--id ") or ", --id " in line for line in opts.splitlines()), name


def test_request_help_says_how_the_work_id_is_chosen():
    text = " ".join(cmd_usage("request").split())
    assert "The work id is --work W when given" in text and "work_<ULID>" in text
    assert "writes nothing and replays the first result" in text


# ------------------------------------------------------------ help examples


@pytest.mark.parametrize("width", ["60", "100"])
def test_every_example_prints_on_its_own_line(width, monkeypatch):
    monkeypatch.setenv("COLUMNS", width)
    for name in sorted(commands()):
        text = cmd_usage(name)
        assert "Example" in text, f"handoff {name} --help has no example"
        examples = [line.strip() for line in text.splitlines() if line.strip().startswith("handoff ")]
        assert examples or name == "mcp", name
        for line in examples:
            assert line.count("handoff ") == 1, f"{name}: {line!r}"
