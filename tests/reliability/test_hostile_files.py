"""Hostile files committed by someone else.

Each case commits one or more crafted files under ``.handoffs/`` with another
author, then reads the repository with the real tool.  Every case must become
a diagnostic naming the file, everything else must read exactly as before, no
crafted content may be executed, and ``verify`` (once present) must fail.
A last test puts the whole corpus in one repository and reads it in a child
process held to hard memory and CPU limits.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_repo
from support import hostile
from support.reliability import child_env, git

ROOT_EVENTS = ".handoffs/events"
PWNED = Path("/tmp/handoff-hostile-pwned")


def _legit(repo) -> dict:
    """A legitimate conversation with every kind of event (``hostile.conversation``)."""
    return hostile.conversation(repo)


def _has(command: str) -> bool:
    import typer.main

    from handoff.faces.cli import app
    return command in typer.main.get_command(app).commands


def _template(repo) -> dict:
    """A valid event dict (bob's say), ready to be mutated."""
    from handoff.core import model
    from handoff.core.yaml import codec
    from handoff.store import clock
    ev = {"protocol": model.PROTOCOL, "workspace_id": "test", "kind": "say", "channel": "general",
          "surface": "thread", "thread_id": "thread_hostile", "from": "bob.sess_bob", "session_id": "sess_bob",
          "body": {"text": "an innocent message"}, "ts": model.format_ts(clock.now_ms()),
          "hlc": model.format_hlc(clock.now_ms(), 0), "id": model.new_event_id("say", clock.new_ulid())}
    model.check_event(ev)
    codec.dump(ev)
    return ev


def _path_of(ev: dict) -> str:
    from handoff.core import model
    return f".handoffs/{model.event_path(ev)}"


def _write(root: Path, rel: str, data: bytes) -> str:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return rel


def _dump(ev: dict) -> bytes:
    import yaml
    return yaml.safe_dump(ev, sort_keys=True, allow_unicode=True).encode()


def _event_yaml(ev: dict, replace: dict[str, str] | None = None) -> bytes:
    text = _dump(ev).decode()
    for a, b in (replace or {}).items():
        text = text.replace(a, b)
    return text.encode()


# --------------------------------------------------------------------- the corpus
# Each case: (root, template event) -> list of repo-relative paths that must be named by a diagnostic.

def c_alias_bomb(root, ev):
    lines = ["a0: &a0 ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    body = "\n".join("  " + ln for ln in lines)
    text = _dump(ev).decode().replace("body:\n  text: an innocent message\n", "body:\n" + body + "\n")
    return [_write(root, _path_of(ev), text.encode())]


def c_single_anchor(root, ev):
    text = _dump(ev).decode().replace("body:\n  text: an innocent message", "body: &b\n  text: an innocent message")
    return [_write(root, _path_of(ev), (text + "ext: *b\n").encode())]


def c_merge_key(root, ev):
    text = _dump(ev).decode().replace("body:\n  text: an innocent message",
                                      "body:\n  <<: {text: merged}\n  other: 1")
    return [_write(root, _path_of(ev), text.encode())]


def c_duplicate_top_key(root, ev):
    return [_write(root, _path_of(ev), _dump(ev) + b"kind: trace\n")]


def c_duplicate_nested_key(root, ev):
    return [_write(root, _path_of(ev), _event_yaml(ev, {"  text: an innocent message":
                                                         "  text: an innocent message\n  text: a different one"}))]


def c_non_utf8(root, ev):
    return [_write(root, _path_of(ev), _dump(ev).replace(b"innocent", "inn\u00f6cent".encode("latin-1")))]


def c_utf16(root, ev):
    return [_write(root, _path_of(ev), _dump(ev).decode().encode("utf-16"))]


def c_binary(root, ev):
    return [_write(root, _path_of(ev), bytes(range(256)) * 64)]


def c_png_named_as_event(root, ev):
    return [_write(root, _path_of(ev), b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2048))]


def c_huge_file(root, ev):
    ev = dict(ev, body={"text": "x", "padding": "y" * (3 * 1024 * 1024)})
    return [_write(root, _path_of(ev), _dump(ev))]


def c_huge_sparse_file(root, ev):
    rel = _path_of(ev)
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:
        fh.write(_dump(ev))
        fh.truncate(64 * 1024 ** 2)  # 64 MiB (sparse), in a file that starts like a good event
    return [rel]


def c_deep_nesting(root, ev):
    return [_write(root, _path_of(ev), _event_yaml(ev, {"  text: an innocent message":
                                                         "  text: x\n  deep: " + "[" * 5000 + "]" * 5000}))]


def c_wrong_type_body(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, body="just a string")))]


def c_wrong_type_hlc(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, hlc=1.5)))]


def c_wrong_type_from(root, ev):
    text = _dump(ev).decode().replace("from: bob.sess_bob", "from: [bob.sess_bob]")
    return [_write(root, _path_of(ev), text.encode())]


def c_top_level_list(root, ev):
    return [_write(root, _path_of(ev), b"- kind: say\n- from: bob\n")]


def c_empty_file(root, ev):
    return [_write(root, _path_of(ev), b"")]


def c_two_documents(root, ev):
    return [_write(root, _path_of(ev), _dump(ev) + b"---\n" + _dump(ev))]


def c_python_object_tag(root, ev):
    text = _dump(ev).decode().replace("text: an innocent message",
                                      f"text: !!python/object/apply:os.system ['touch {PWNED}']")
    return [_write(root, _path_of(ev), text.encode())]


def c_python_name_tag(root, ev):
    text = _dump(ev).decode().replace("text: an innocent message", "text: !!python/name:os.system ''")
    return [_write(root, _path_of(ev), text.encode())]


def c_custom_tag(root, ev):
    text = _dump(ev).decode().replace("text: an innocent message", "text: !secret 'an innocent message'")
    return [_write(root, _path_of(ev), text.encode())]


def c_non_finite_float(root, ev):
    text = _dump(ev).decode().replace("text: an innocent message", "text: x\n  score: !!float .nan")
    return [_write(root, _path_of(ev), text.encode())]


def c_huge_integer(root, ev):
    text = _dump(ev).decode().replace("text: an innocent message", "text: x\n  n: " + "9" * 20000)
    return [_write(root, _path_of(ev), text.encode())]


def c_oversized_text(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, body={"text": "z" * 70000})))]


def c_name_lies_kind(root, ev):
    real = _path_of(ev)
    return [_write(root, real.replace(".say.", ".trace."), _dump(ev))]


def c_name_lies_sender(root, ev):
    return [_write(root, _path_of(dict(ev, **{"from": "alice.sess_alice"})), _dump(ev))]


def c_name_lies_id(root, ev):
    from handoff.core import model
    from handoff.store import clock
    other = dict(ev, id=model.new_event_id("say", clock.new_ulid()))
    return [_write(root, _path_of(other), _dump(ev))]


def c_wrong_day_directory(root, ev):
    rel = _path_of(ev)
    parts = rel.split("/")
    parts[3] = "01" if parts[3] != "01" else "02"
    return [_write(root, "/".join(parts), _dump(ev))]


def c_bad_file_name(root, ev):
    return [_write(root, f"{ROOT_EVENTS}/2026-01/01/not-an-event.yaml", _dump(ev))]


def c_escape_sequences_in_name(root, ev):
    return [_write(root, f"{ROOT_EVENTS}/2026-01/01/msg_\x1b[2J\x1b]0;pwned\x07.say.bob.yaml", _dump(ev))]


def c_non_utf8_file_name(root, ev):
    name = os.fsdecode(b"msg_\xff\xfe.say.bob.yaml")
    return [_write(root, f"{ROOT_EVENTS}/2026-01/01/{name}", _dump(ev))]


def c_unknown_kind(root, ev):
    ev = dict(ev, kind="teleport")
    return [_write(root, _path_of(ev), _dump(ev))]


def c_unknown_schema_version(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, protocol="handoff/v9")))]


def c_unknown_field(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, admin=True)))]


def c_id_collision(root, ev):
    """Two files, one id, different content (different sender, so a different name)."""
    first = _write(root, _path_of(ev), _dump(ev))
    twin = dict(ev, **{"from": "mallory.sess_mallory"}, body={"text": "the same id, other words"})
    return [first, _write(root, _path_of(twin), _dump(twin))]


def c_future_timestamp(root, ev):
    from handoff.core import ids, model
    from handoff.store import clock
    future = clock.now_ms() + 20 * 365 * 86400 * 1000
    ev = dict(ev, id=model.new_event_id("say", ids.new_ulid(future, 12345)), ts=model.format_ts(future),
              hlc=model.format_hlc(future, 0))
    return [_write(root, _path_of(ev), _dump(ev))]


def c_spoofed_direct_room(root, ev):
    ev = dict(ev, surface="direct", thread_id=None, direct_id="direct_" + "0" * 32, to="alice.sess_alice")
    ev = {k: v for k, v in ev.items() if v is not None}
    return [_write(root, _path_of(ev), _dump(ev))]


def c_causal_cycle(root, ev):
    from handoff.core import model
    from handoff.store import clock
    a = dict(ev, id=model.new_event_id("say", clock.new_ulid()))
    b = dict(ev, id=model.new_event_id("say", clock.new_ulid()), body={"text": "second"})
    a["after"], b["after"] = [b["id"]], [a["id"]]
    return [_write(root, _path_of(a), _dump(a)), _write(root, _path_of(b), _dump(b))]


def c_symlink_out(root, ev):
    rel = _path_of(ev)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/passwd", root / rel)
    return [rel]


def c_symlink_within(root, ev):
    """A link inside .handoffs/ pointing at another file there (the config)."""
    rel = _path_of(ev)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / ".handoffs" / "config.yaml", (root / rel).parent), root / rel)
    return [rel]


def c_symlinked_directory_out(root, ev):
    rel = f"{ROOT_EVENTS}/2031-01"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc", root / rel)
    return [rel]


def c_symlink_into_handoffs(root, ev):
    """A link elsewhere in the repo pointing into .handoffs/events: nothing outside events/ is read as events."""
    first = _write(root, _path_of(ev), _dump(dict(ev, body={"text": "linked from outside"})))
    os.symlink(first, root / "docs-link.yaml")
    return []  # a valid event; the outside link is simply never read


def c_receipt_for_unknown_work(root, ev):
    ev = dict(ev, kind="receipt", work_id="work_nothing_here", to="alice.sess_alice",
              body={"status": "accepted", "for_id": "msg_x"})
    from handoff.core import model
    ev["id"] = model.new_event_id("receipt", ev["id"].split("_", 1)[1])
    return [_write(root, _path_of(ev), _dump(ev))]


def c_id_reuse_other_kind(root, ev):
    """The id of an event already in the repo, reused by another kind (so another path)."""
    import yaml
    done = next(p for p in sorted((root / ROOT_EVENTS).rglob("*.trace.*.yaml")))
    old = yaml.safe_load(done.read_bytes())
    forged = dict(old, kind="receipt", body={"status": "canceled", "for_id": old["id"], "reason_code": "x"})
    return [_write(root, _path_of(forged), _dump(forged))]


def c_newline_in_ids(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, thread_id="thread_hostile\n", session_id="sess_bob\n")))]


def c_newline_in_file_name(root, ev):
    return [_write(root, _path_of(ev)[:-5] + "\n.yaml", _dump(ev))]


def c_wrong_type_protocol(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, protocol=[])))]


def c_wrong_type_work_id(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, work_id={"a": 1})))]


def c_out_of_range_deadline(root, ev):
    return [_write(root, _path_of(ev), _dump(dict(ev, deadline_at="99999999999999999")))]


CASES = {name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("c_")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile-base")
    import os as _os
    cwd = _os.getcwd()
    repo = make_repo(base / "repo")
    facts = _legit(repo)
    facts["inbox_b"] = repo.j("inbox", "--session", "sess_bob")
    facts["inbox_a"] = repo.j("inbox", "--session", "sess_alice")
    facts["status"] = repo.j("status")
    _os.chdir(cwd)
    return repo, facts


def _copy(baseline_repo, dest: Path):
    from conftest import Repo
    shutil.copytree(baseline_repo.path, dest, symlinks=True)
    return Repo(dest)


def _commit_as_someone_else(repo, message: str) -> None:
    git(repo.path, "add", "-A", "--", ".")
    env = dict(os.environ, GIT_AUTHOR_NAME="Mallory", GIT_AUTHOR_EMAIL="mallory@example.com",
               GIT_COMMITTER_NAME="Mallory", GIT_COMMITTER_EMAIL="mallory@example.com")
    git(repo.path, "commit", "-q", "--no-verify", "-m", message, env=env)


def _verify_exists() -> bool:
    return _has("verify")


def test_corpus_size():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file(case, baseline, tmp_path):
    base, facts = baseline
    repo = _copy(base, tmp_path / "repo")
    PWNED.unlink(missing_ok=True)
    named = CASES[case](repo.path, _template(repo))
    _commit_as_someone_else(repo, f"hostile: {case}")

    # reading still works, and says which file is wrong
    status = repo.j("status")
    from handoff.app.workspace import Workspace
    diags = Workspace(repo.path).state()["diagnostics"]
    for rel in named:
        short = rel[len(".handoffs/"):]
        assert any(d["path"] == short or d["path"].startswith(short + "/") for d in diags), \
            f"{case}: no diagnostic names {rel!r}: {diags}"
    if named:
        assert status["diagnostics"] >= 1
    # the legitimate conversation reads exactly as before
    for who, key in (("sess_bob", "inbox_b"), ("sess_alice", "inbox_a")):
        got = {e["id"] for e in repo.j("inbox", "--session", who)["entries"]}
        assert {e["id"] for e in facts[key]["entries"]} <= got, case
    # human output of everything stays printable and free of raw escape sequences
    for args in (("status",), ("inbox", "--session", "sess_bob"), ("session", "list"), ("channels",)):
        r = repo.ok(*args)
        assert "\x1b" not in r.out + r.err and "\x07" not in r.out + r.err
    # every command, in JSON, still answers (none raises)
    hostile.run_everything(repo, outputs=(("-o", "json"),))
    # a writer still works on top of it
    sent = repo.j("send", "--session", "sess_alice", "--channel", "general", "--text", "still working")
    assert sent["committed"] is True
    assert not PWNED.exists(), "crafted YAML executed code"
    if _verify_exists() and named:
        r = repo.h("verify", "--all", "-o", "json")
        assert r.code == 5, f"{case}: verify passed: {r.out}"
        flagged = {f["path"] for f in r.json.get("findings", [])}
        assert any(p == rel or p.startswith(rel + "/") for p in flagged for rel in named), f"{case}: {r.out}"


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB of address space
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


def test_whole_corpus_under_hard_limits(baseline, tmp_path):
    """Every hostile file at once, read by real processes that may use at most 1 GiB and 60 s of CPU."""
    base, facts = baseline
    repo = _copy(base, tmp_path / "repo")
    named = []
    for name in sorted(CASES):
        named += CASES[name](repo.path, _template(repo))
    _commit_as_someone_else(repo, "hostile: everything at once")
    results = {}
    for args in (["status", "-o", "json"], ["inbox", "--session", "sess_bob", "-o", "json"], ["status"],
                 ["session", "list"]):
        proc = subprocess.run([sys.executable, "-m", "handoff", *args], cwd=repo.path, capture_output=True,
                              env=child_env(), preexec_fn=_limits, timeout=300)
        assert proc.returncode == 0, f"{args}: {proc.stderr.decode(errors='replace')[-2000:]}"
        assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
        results[args[0] + " ".join(args[1:])] = proc.stdout
    status = json.loads(results["status-o json"])
    assert status["diagnostics"] >= len(named) - 2
    got = json.loads(results["inbox--session sess_bob -o json"])
    assert {e["id"] for e in facts["inbox_b"]["entries"]} <= {e["id"] for e in got["entries"]}
    assert not PWNED.exists()
    print(f"\nhostile corpus: {len(CASES)} cases, {len(named)} crafted files, {status['diagnostics']} diagnostics")
