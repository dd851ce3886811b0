"""The index must always give exactly what reducing every file from scratch gives.

Each check compares the index's state (cold, extended, or re-folded) with
``reducer.reduce`` over records read straight from the files, field by field
and in the same order, through real repos, real git operations (commits,
checkouts, pulls between clones, worktrees) and the real CLI.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT, git

sys.path.insert(0, str(ROOT / "bench"))

from handoff import index
from handoff.app.workspace import Workspace
from handoff.core import reducer
from handoff.index import conn, parse, refold, refresh, scan
from handoff.index import db as index_db

HEAVY = bool(os.environ.get("HANDOFF_HEAVY"))


def reference(path: Path) -> dict:
    """What main's loader folds: every work-tree file, then remote-tracking branches' other files."""
    from handoff.git.remotes import remote_records
    from handoff.store import clock
    ws = Workspace(path)
    local = index.read_all_records(ws)
    records = local + remote_records(ws, {r["path"] for r in local})
    state = reducer.reduce(records)
    future = reducer.clock_diagnostics(records, clock.now_ms())
    if future:
        state["diagnostics"] = sorted(state["diagnostics"] + future, key=reducer.diagnostic_key)
    return state


def from_index(path: Path) -> dict:
    return Workspace(path).state(refresh=True).materialize()


def assert_matches(path: Path) -> dict:
    got, want = from_index(path), reference(path)
    for key in want:
        assert json.dumps(got[key], default=str) == json.dumps(want[key], default=str), key
    return want


def generate(path: Path, n: int, check_every: int | None = None, seed: int = 3) -> dict:
    import gen
    if not (path / ".handoffs" / "config.yaml").exists():
        gen.make_repo(path)
    g = gen.Generator(path, n, seed=seed)
    checks = []

    def check(done, total):
        checks.append(done)
        assert_matches(path)

    info = g.run(check if check_every else None, every=check_every or 1000)
    info["checks"] = checks
    return info


def cache_files(path: Path) -> list[str]:
    d = Workspace(path).paths.shared / "cache"
    return sorted(os.listdir(d)) if d.exists() else []


def test_index_matches_a_full_reduce_as_events_arrive(tmp_path):
    repo = tmp_path / "r"
    before = dict(index.STATS)
    info = generate(repo, 1500 if HEAVY else 300, check_every=40)
    assert len(info["checks"]) >= 3
    assert index.STATS["extend"] - before["extend"] >= 3  # new events were folded onto the saved state
    assert index.STATS["refold"] - before["refold"] == 1  # only the first (cold) build folded everything
    want = assert_matches(repo)
    assert want["event_count"] >= 300
    # dropping the cache changes nothing
    index.drop(Workspace(repo))
    assert cache_files(repo) == [] or not any(n.endswith(".sqlite3") for n in cache_files(repo))
    assert_matches(repo)


def test_removed_files_and_branch_switches_refold(tmp_path):
    repo = tmp_path / "r"
    generate(repo, 120)
    import gen
    gen.commit_all(repo, "first batch")
    first = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "more")
    generate_more(repo)
    gen.commit_all(repo, "second batch")
    more = assert_matches(repo)
    refolds = index.STATS["refold"]
    git(repo, "checkout", "-q", "main")  # files vanish
    back = assert_matches(repo)
    assert index.STATS["refold"] == refolds + 1
    assert back["event_count"] < more["event_count"]
    git(repo, "checkout", "-q", "more")
    assert assert_matches(repo)["event_count"] == more["event_count"]
    git(repo, "checkout", "-q", first)
    assert_matches(repo)


def generate_more(repo: Path) -> None:
    """A few more events through the real CLI (the generator's in-memory state started from scratch)."""
    from conftest import Repo
    r = Repo(repo)
    a = r.session("latecomer", "general", "sess_late_a")
    b = r.session("helper", "general", "sess_late_b")
    r.ok("send", "--session", a["session_id"], "--channel", "general", "--to", b["peer_id"], "-m", "hello",
         "--no-commit")
    r.ok("request", "--session", a["session_id"], "--to", b["peer_id"], "--channel", "general", "-d", "do it",
         "--work", "work_late", "--no-commit")
    r.ok("accept", "work_late", "--session", b["session_id"], "--no-commit")


def test_events_that_sort_before_the_saved_state_refold(clones):
    a, b = clones("a"), clones("b")
    a.ok("init", "--workspace", "test")
    sa = a.session("alpha", "general", "sess_alpha")
    a.git("push", "-q", "origin", "HEAD:main")
    b.git("pull", "-q", "origin", "main")
    sb = b.session("beta", "general", "sess_beta")
    # b writes first (older clocks), a writes later; a then pulls b's older events
    for i in range(3):
        b.ok("send", "--session", sb["session_id"], "--channel", "general", "-m", f"from b {i}")
    for i in range(3):
        a.ok("send", "--session", sa["session_id"], "--channel", "general", "-m", f"from a {i}")
    assert_matches(a.path)
    b.git("push", "-q", "origin", "HEAD:main")
    a.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    want = assert_matches(a.path)
    texts = [m["body"]["text"] for m in want["messages"]]
    assert texts.index("from b 0") < texts.index("from a 0")  # content order, not arrival order
    inbox = a.j("inbox", "--session", "sess_alpha", "--all")
    assert {e["body"]["text"] for e in inbox["entries"]} == {"from b 0", "from b 1", "from b 2"}


def test_malformed_and_odd_entries_match(repo, tmp_path):
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "one")
    day = repo.event_files()[0].parent
    (day / "msg_01zzzzzzzzzzzzzzzzzzzzzzzz.say.a.sess_a.yaml").write_text("not: [valid\n")
    (day / "notes.txt").write_text("ignored\n")
    (day / ".hidden.yaml").write_text("ignored\n")
    os.symlink("/etc/hostname", day / "msg_01yyyyyyyyyyyyyyyyyyyyyyyy.say.a.sess_a.yaml")
    want = assert_matches(repo.path)
    assert len(want["diagnostics"]) == 2
    # a copy of a valid event under another name: flagged, never folded twice
    good = repo.event_files()[0]
    shutil.copy(good, day / ("msg_01xxxxxxxxxxxxxxxxxxxxxxxx" + good.name[len("msg_01xxxxxxxxxxxxxxxxxxxxxxxx"):]))
    assert_matches(repo.path)
    for p in list(day.iterdir()):
        if p.name.startswith(("msg_01z", "msg_01y", "msg_01x")):
            p.unlink()
    want = assert_matches(repo.path)
    assert want["diagnostics"] == []
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "two")
    assert assert_matches(repo.path)["event_count"] == 3


def test_corrupt_or_foreign_cache_is_rebuilt(repo):
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "one")
    want = assert_matches(repo.path)
    cache = Workspace(repo.path).paths.shared / "cache"
    for name in os.listdir(cache):
        if name.endswith(".sqlite3"):
            (cache / name).write_bytes(b"this is not a database" * 100)
    assert from_index(repo.path)["event_count"] == want["event_count"]
    assert repo.j("inbox", "--session", "sess_a")["count"] == 0
    # another version of the code: a different key, a fresh cache
    old = index.code_version()
    index_db._code_version_cache[:] = ["someotherversion"]
    try:
        assert from_index(repo.path)["event_count"] == want["event_count"]
    finally:
        index_db._code_version_cache[:] = [old]
    assert_matches(repo.path)


def test_unwritable_cache_still_answers(repo):
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "one")
    cache = Workspace(repo.path).paths.shared / "cache"
    shutil.rmtree(cache)
    cache.write_text("a file where the directory should be")
    try:
        assert from_index(repo.path)["event_count"] == 2
        assert repo.j("status")["messages"] == 1
    finally:
        cache.unlink()


def test_worktrees_share_the_parse_cache(repo, tmp_path, monkeypatch):
    s = repo.session("a", "general", "sess_a")
    for i in range(5):
        repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", f"m{i}")
    assert_matches(repo.path)
    wt = tmp_path / "wt"
    repo.git("worktree", "add", "-q", str(wt), "-b", "side")
    parsed = []
    real = reducer.decode
    monkeypatch.setattr(reducer, "decode", lambda rel, data: parsed.append(rel) or real(rel, data))
    assert_matches(wt)
    assert [p for p in parsed if p.startswith("events/")] == [] or len(parsed) <= 6  # (reference parses its own)
    parsed.clear()
    Workspace(wt).state()
    assert parsed == []  # same blobs: nothing parsed again
    from conftest import Repo
    Repo(wt).ok("send", "--session", "sess_a", "--channel", "general", "-m", "from the worktree")
    assert assert_matches(wt)["event_count"] == 7
    assert assert_matches(repo.path)["event_count"] == 6
    assert sum(1 for n in cache_files(repo.path) if n.startswith("view-") and n.endswith(".sqlite3")) == 2


def test_inbox_from_the_index_equals_the_full_view(tmp_path):
    from handoff.core import queries
    from handoff.views import payloads as views
    repo = tmp_path / "r"
    generate(repo, 250)
    ws = Workspace(repo)
    ref = reference(repo)
    state = ws.state()
    assert queries.find_session(state, "nobody.sess_none") is None
    for sid, s in ref["sessions"].items():
        # a session named by its peer id is looked up in the index's column, not by loading them all
        assert queries.find_session(Workspace(repo).state(), s["peer_id"]) == queries.find_session(ref, s["peer_id"])
        full = queries.inbox(ref, s, set(), 1_800_000_000_000, include_all=True)
        narrowed = queries.inbox(index.for_inbox(state, state["sessions"][sid]), s, set(), 1_800_000_000_000,
                               include_all=True)
        assert json.dumps(narrowed) == json.dumps(full)
        # what `handoff inbox` shows: acknowledged messages are left out before they are read
        ids = [e["id"] for e in full]
        for acked in (set(ids[::2]), set(ids), set(ids[1::3]) | {m["id"] for m in ref["messages"][:40]}):
            want = queries.inbox(ref, s, acked, 1_800_000_000_000)
            got = queries.inbox(index.for_inbox(state, state["sessions"][sid], skip=acked), s, acked,
                              1_800_000_000_000)
            assert json.dumps(got) == json.dumps(want)
    for key, box in ref["threads"].items():
        ch, tid = box["channel"], box["thread_id"]
        assert views.container_messages(index.for_container(state, channel=ch, thread_id=tid), channel=ch,
                                        thread_id=tid) == views.container_messages(ref, channel=ch, thread_id=tid)


def test_concurrent_readers_and_writers_agree(repo):
    repo.session("a", "general", "sess_a")
    procs = []
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for i in range(4):
        procs.append(subprocess.Popen([sys.executable, "-m", "handoff", "send", "--session", "sess_a", "--channel",
                                       "general", "-m", f"p{i}", "-o", "json"], cwd=repo.path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        procs.append(subprocess.Popen([sys.executable, "-m", "handoff", "status", "-o", "json"], cwd=repo.path,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert assert_matches(repo.path)["event_count"] == 5
    assert repo.j("status")["messages"] == 4


@pytest.mark.slow
def test_heavier_mixed_history(tmp_path):
    repo = tmp_path / "r"
    generate(repo, 5000 if HEAVY else 800, check_every=400, seed=11)
    assert_matches(repo)


def test_remote_tracking_branches_fold_like_the_work_tree(clones):
    a = clones("a")
    a.git("checkout", "-q", "-b", "feature-a")
    b = clones("b")
    b.git("checkout", "-q", "-b", "feature-b")
    sa = a.session("alice", "dev", "sess_alice")
    sb = b.session("bob", "dev", "sess_bob")
    a.ok("sync")
    b.ok("sync")
    a.ok("sync")
    assert_matches(a.path)
    assert {p["agent"] for p in a.j("peers", "dev")["peers"]} == {"alice", "bob"}
    wid = a.j("request", "--session", sa["session_id"], "--to", "bob", "--channel", "dev", "-d", "port it")["handoff_id"]
    a.ok("sync")
    b.ok("sync")
    assert_matches(b.path)
    b.ok("accept", wid, "--session", sb["session_id"])
    b.ok("sync")
    a.ok("sync")
    assert assert_matches(a.path)["work"][wid]["state"] == "working"
    # merging the other branch: its files arrive in the work tree and hide the remote copies
    a.git("merge", "-q", "--no-edit", "origin/feature-b")
    assert_matches(a.path)
    a.ok("send", "--session", sa["session_id"], "--channel", "dev", "-m", "merged")
    assert_matches(a.path)


def test_full_fold_in_small_batches_with_clashing_ids_cycles_and_future_events(repo, monkeypatch):
    """A full fold orders events by their keys and reads them back from the parse cache a batch at a time,
    writing message rows as it goes: batch edges, id clashes, cycles and events dated ahead must all come
    out as a full reduce gives them, cold and re-folded."""
    from handoff.core import ids, model
    from handoff.core.yaml import codec
    monkeypatch.setattr(refold._EventStream, "BATCH", 3)
    monkeypatch.setattr(refold._StreamSink, "FLUSH", 2)
    a = repo.session("alpha", "general", "sess_a")
    b = repo.session("beta", "general", "sess_b")
    for i in range(5):
        repo.ok("send", "--session", "sess_a", "--channel", "general", "-m", f"m{i}")
    wid = repo.j("request", "--session", "sess_a", "--to", b["peer_id"], "--channel", "general", "-d", "x")["handoff_id"]
    repo.ok("accept", wid, "--session", "sess_b")
    repo.ok("send", "--session", "sess_b", "--channel", "general", "--surface", "direct", "--to", a["peer_id"],
            "-m", "psst")
    assert_matches(repo.path)
    root = repo.path / ".handoffs"

    def write(ev: dict) -> Path:
        path = root / model.event_path(ev)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(codec.dump(ev))
        return path

    says = [p for p in repo.event_files() if ".say." in p.name]
    template = codec.load(says[0].read_bytes())
    # the same id under another sender: a clash, the first in canonical order applied
    clash = write(dict(template, **{"from": b["peer_id"], "session_id": "sess_b", "body": {"text": "forged"}}))
    want = assert_matches(repo.path)
    assert any(d["reason_code"] == "id_conflict" for d in want["diagnostics"])
    # two events naming each other as parents, and one dated far ahead of every clock
    base_ms = ids.ulid_ms(template["id"].split("_", 1)[1]) + 5
    one, two = (model.new_event_id("say", ids.encode_base32(base_ms + k, 10) + "0" * 16) for k in (1, 2))
    cyc = [write(dict(template, id=one, after=[two], body={"text": "c1"})),
           write(dict(template, id=two, after=[one], body={"text": "c2"}))]
    ahead_ms = 4_000_000_000_000
    ahead = dict(template, id=model.new_event_id("say", ids.encode_base32(ahead_ms, 10) + "1" * 16),
                 hlc=f"{ahead_ms:016d}-00000", ts=model.format_ts(ahead_ms), body={"text": "from the future"})
    cyc.append(write(ahead))
    want = assert_matches(repo.path)
    assert any("cycle" in d["message"] for d in want["diagnostics"])
    assert any(d["reason_code"] == "future_timestamp" for d in want["diagnostics"])
    index.drop(Workspace(repo.path))  # cold, with everything in place
    assert_matches(repo.path)
    for p in [clash] + cyc:
        p.unlink()
    assert assert_matches(repo.path)["diagnostics"] == []
    repo.ok("send", "--session", "sess_a", "--channel", "general", "-m", "after")
    assert_matches(repo.path)


def test_a_file_first_seen_misnamed_then_renamed_right(repo):
    """The parse cache holds one record per blob: a misnamed file's diagnostic must not stick to the same
    bytes once they sit under the right name (and a misnamed copy of a good file stays flagged)."""
    from handoff.core import ids, model
    from handoff.core.yaml import codec
    repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", "sess_a", "--channel", "general", "-m", "one")
    good = next(p for p in repo.event_files() if ".say." in p.name)
    t = codec.load(good.read_bytes())
    ms = ids.ulid_ms(t["id"].split("_", 1)[1]) + 5
    ev = dict(t, id=model.new_event_id("say", ids.encode_base32(ms, 10) + "3" * 16), body={"text": "late"})
    right = repo.path / ".handoffs" / model.event_path(ev)
    wrong = right.with_name(right.name.replace(".say.", ".say.x"))
    wrong.write_bytes(codec.dump(ev))
    assert [d["reason_code"] for d in assert_matches(repo.path)["diagnostics"]] == ["malformed"]
    wrong.rename(right)
    assert assert_matches(repo.path)["diagnostics"] == []
    shutil.copy(right, wrong)
    assert len(assert_matches(repo.path)["diagnostics"]) == 1
    index.drop(Workspace(repo.path))  # cold: both parsed at once, in either order
    assert len(assert_matches(repo.path)["diagnostics"]) == 1
    right.unlink()
    assert len(assert_matches(repo.path)["diagnostics"]) == 1


def test_a_state_file_from_another_boot_is_folded_again_from_the_parse_cache(repo, monkeypatch):
    """The state file is written without fsync: one written before a reboot is not trusted after it."""
    if index_db.boot_id() is None:
        pytest.skip("this system does not tell one boot from the next")
    import sqlite3
    s = repo.session("a", "general", "sess_a")
    for i in range(3):
        repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", f"m{i}")
    want = assert_matches(repo.path)
    cache = Workspace(repo.path).paths.shared / "cache"
    [view] = [n for n in os.listdir(cache) if n.startswith("view-") and n.endswith(".sqlite3")]
    db = sqlite3.connect(cache / view)
    assert db.execute("SELECT v FROM meta WHERE k='boot'").fetchone()[0] == index_db.boot_id()
    db.execute("UPDATE meta SET v='a-boot-before-a-crash' WHERE k='boot'")  # what the disk held after it
    db.execute("INSERT OR REPLACE INTO meta VALUES ('acc', x'00')")  # (and pages that never made it)
    db.commit()
    db.close()
    parsed = []
    real = reducer.decode
    monkeypatch.setattr(reducer, "decode", lambda rel, data: parsed.append(rel) or real(rel, data))
    refolds = index.STATS["refold"]
    assert from_index(repo.path)["event_count"] == want["event_count"]
    assert index.STATS["refold"] == refolds + 1  # the state was folded again...
    assert parsed == []  # ...from the parse cache, which is synced and kept
    assert_matches(repo.path)
    assert repo.j("inbox", "--session", "sess_a", "--all")["count"] == 0


def test_hundreds_of_new_files_parsed_by_two_processes_fold_like_one(tmp_path):
    """A pull of a few hundred files is parsed half in a forked child (a real CLI process, single-threaded)."""
    path = tmp_path / "r"
    generate(path, 40)
    from conftest import Repo
    repo = Repo(path)
    assert repo.proc("status", "-o", "json").returncode == 0
    generate(path, 300, seed=11)
    r = repo.proc("status", "-o", "json", env={"HANDOFF_INDEX_TRACE": "1"})
    assert r.returncode == 0, r.stderr
    if parse._cpus() > 1 and hasattr(os, "fork"):
        assert "parse split" in r.stderr
    before = dict(index.STATS)
    want = assert_matches(path)  # (the state the child process saved, read as it is)
    assert index.STATS["parsed"] == before["parsed"] and index.STATS["refold"] == before["refold"]
    assert want["event_count"] >= 300


def test_fine_timestamps_shorten_the_racy_window(repo):
    """Files older than a moment are trusted by their stat on a file system with sub-second timestamps:
    the next command does not hash them again (on whole-second ones they wait out 3 s, git's rule)."""
    import re
    import time
    assert scan._racy(10**18 + 1, 10**18 + 100) and scan._racy(10**18, 10**18 + 2 * 10**9)  # (too fresh)
    assert not scan._racy(10**18 + 1, 10**18 + 10**9) and scan._racy(10**18, 10**18 + 10**9)

    def cli(*args, trace=False):
        r = repo.proc(*args, "-o", "json", env={"HANDOFF_INDEX_TRACE": "1"} if trace else None)
        assert r.returncode == 0, r.stderr
        return [int(n) for n in re.findall(r"read\+parse (\d+)", r.stderr)]

    cli("session", "new", "--agent", "a", "--channel", "general", "--id", "sess_a")
    for i in range(3):
        cli("send", "--session", "sess_a", "--channel", "general", "-m", f"m{i}")
    one = next((repo.path / ".handoffs" / "events").rglob("*.yaml"))
    if one.stat().st_mtime_ns % 1_000_000_000 == 0:
        pytest.skip("this file system keeps whole-second timestamps")
    time.sleep(0.4)  # (longer than the short window, far shorter than 3 s)
    cli("status")  # (looks at every file now that all are older than the short window)
    cli("send", "--session", "sess_a", "--channel", "general", "-m", "late")
    assert cli("status", trace=True) == [1]  # only the new file (3 s rule: 5)
    assert_matches(repo.path)


def _journal_modes(path: Path) -> dict[str, str]:
    import sqlite3
    cache = Workspace(path).paths.shared / "cache"
    out = {}
    for name in sorted(os.listdir(cache)):
        if name.endswith(".sqlite3"):
            db = sqlite3.connect(cache / name)
            out[name.split("-")[0]] = db.execute("PRAGMA journal_mode").fetchone()[0]
            db.close()
    return out


def test_a_cold_build_killed_midway_is_undone_and_the_next_command_answers(tmp_path):
    """A new cache is filled in rollback-journal mode (each page written once), then turned to WAL.

    A build killed before its commit leaves a hot journal: the next command undoes it, builds again,
    answers exactly, and leaves both files in WAL mode for readers that never wait for a writer.
    """
    import signal
    import subprocess
    path = tmp_path / "r"
    generate(path, 1600)
    # The real CLI in its own process, which SIGKILLs itself once the files are parsed and stored and the
    # fold is not yet written (at the index's "keys" step: always the same instant, however loaded the box).
    kill_at_keys = ("import os, signal, sys\n"
                    "from handoff.index import stats\n"
                    "step = stats.trace\n"
                    "stats.trace = lambda what: (step(what), what.startswith('keys') and os.kill(os.getpid(), "
                    "signal.SIGKILL))\n"
                    "from handoff.faces.cli import run\n"
                    "sys.argv = ['handoff', 'status', '-o', 'json']\n"
                    "run()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", kill_at_keys], cwd=path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    cache = Workspace(path).paths.shared / "cache"
    assert any(n.endswith("-journal") for n in os.listdir(cache))  # the build's undo log, left hot
    from conftest import Repo
    r = Repo(path).proc("status", "-o", "json")
    assert r.returncode == 0, r.stderr
    want = assert_matches(path)
    assert json.loads(r.stdout)["events"] == want["event_count"]
    assert _journal_modes(path) == {"parsed": "wal", "view": "wal"}
    assert not any(n.endswith("-journal") for n in os.listdir(cache))


def test_readers_during_a_cold_build_wait_for_it_and_agree(tmp_path):
    import subprocess
    path = tmp_path / "r"
    generate(path, 1600)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "handoff", "status", "-o", "json"], cwd=path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    want = assert_matches(path)
    assert {o["events"] for o in outs} == {want["event_count"]}
    assert _journal_modes(path) == {"parsed": "wal", "view": "wal"}


def test_a_forked_parser_that_dies_leaves_its_half_to_the_parent(tmp_path, monkeypatch):
    """The child that parses half of a few hundred files fails (here: its decode raises): the parent
    parses that half itself and the fold is exact."""
    if parse._cpus() < 2 or not hasattr(os, "fork"):
        pytest.skip("no second core to fork a parser onto")
    path = tmp_path / "r"
    generate(path, 40)
    assert_matches(path)
    generate(path, 300, seed=13)
    parent = os.getpid()
    real = reducer.decode

    def decode(rel, data):
        if os.getpid() != parent:
            raise RuntimeError("the forked parser dies")  # (in the child only: it exits with an error)
        return real(rel, data)
    monkeypatch.setattr(reducer, "decode", decode)
    monkeypatch.setattr(parse, "_may_fork", lambda: True)  # (fork even if this test process runs threads)
    before = index.STATS["parsed"]
    want = reference(path)
    got = from_index(path)
    assert index.STATS["parsed"] - before >= 300  # every new file's record was stored, the child's half too
    for key in want:
        assert json.dumps(got[key], default=str) == json.dumps(want[key], default=str), key


def test_a_file_left_in_rollback_mode_turns_to_wal_when_nobody_holds_it(repo):
    """The switch to WAL is tried without waiting.  A process that could not switch (another process was
    reading) holds no read open meanwhile (in rollback-journal mode it would stall every writer) and
    tries again at its next read, so a long-lived process does not keep everyone on the old locking."""
    import sqlite3
    import time
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "one")
    one = next((repo.path / ".handoffs" / "events").rglob("*.yaml"))
    settle = 0.4 if one.stat().st_mtime_ns % 1_000_000_000 else 3.1  # (past the racy window: see _racy)
    time.sleep(settle)  # (so the reads below find nothing to write)
    assert repo.proc("status", "-o", "json").returncode == 0
    cache = Workspace(repo.path).paths.shared / "cache"
    [view] = [cache / n for n in os.listdir(cache) if n.startswith("view-") and n.endswith(".sqlite3")]
    for path in (view, cache / f"parsed-{index.INDEX_FORMAT}.sqlite3"):  # (as a build cut short leaves them)
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        db.close()
    reader = sqlite3.connect(view, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM meta").fetchone()  # another process in the middle of a read
    ws = Workspace(repo.path)  # the long-lived process
    state = ws.state()
    assert state["event_count"] == 2  # it reads fine meanwhile...
    assert _journal_modes(repo.path) == {"parsed": "wal", "view": "delete"}  # ...and could switch only one
    reader.execute("COMMIT")
    reader.close()
    # while it still holds its state, another process writes: nothing makes it wait
    r = repo.proc("send", "--session", "sess_a", "--channel", "general", "-m", "two", "-o", "json", timeout=40)
    assert r.returncode == 0, r.stderr
    assert state["event_count"] == 2
    assert _journal_modes(repo.path) == {"parsed": "wal", "view": "wal"}  # (the writer's process switched it)
    assert ws.state(refresh=True)["event_count"] == 3
    time.sleep(settle)
    assert ws.state(refresh=True)["event_count"] == 3  # (settled: the next read writes nothing)
    # once more with no other process to do it: the long-lived one switches the file at its next read
    del state, ws  # (its connection closes with it)
    import gc
    gc.collect()
    readers = []
    for path in (view, cache / f"parsed-{index.INDEX_FORMAT}.sqlite3"):
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        db.close()
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM meta").fetchone()
        readers.append(reader)
    ws = Workspace(repo.path)
    assert ws.state()["event_count"] == 3
    assert _journal_modes(repo.path) == {"parsed": "delete", "view": "delete"}
    con = refresh.open_index(ws).connect()
    boot_known = index_db.boot_id() is not None
    # (a power cut can damage a rollback-journal file synced NORMAL, never a WAL one: FULL until the switch)
    assert con.execute("PRAGMA main.synchronous").fetchone()[0] == (0 if boot_known else 2)
    assert con.execute("PRAGMA p.synchronous").fetchone()[0] == 2
    for reader in readers:
        reader.execute("COMMIT")
        reader.close()
    assert ws.state(refresh=True)["event_count"] == 3
    assert _journal_modes(repo.path) == {"parsed": "wal", "view": "wal"}
    assert con.execute("PRAGMA main.synchronous").fetchone()[0] == (0 if boot_known else 1)
    assert con.execute("PRAGMA p.synchronous").fetchone()[0] == 1
    assert_matches(repo.path)


def test_a_reader_waits_for_a_first_build_longer_than_the_usual_busy_timeout(repo, monkeypatch):
    """While a new file is in rollback-journal mode, its builder holds it whole once pages spill (a
    400,000-event build takes about a minute here): a reader waits for the build, however long, instead
    of giving up after the usual timeout and building everything again in memory."""
    import sqlite3
    import threading
    s = repo.session("a", "general", "sess_a")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "one")
    want = assert_matches(repo.path)
    cache = Workspace(repo.path).paths.shared / "cache"
    [view] = [cache / n for n in os.listdir(cache) if n.startswith("view-") and n.endswith(".sqlite3")]
    import gc
    gc.collect()  # (no connection of this process left open on it)
    db = sqlite3.connect(view)
    assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"  # (as during a first build)
    db.close()
    holding, done = threading.Event(), threading.Event()

    def builder():  # another process's build, its pages spilled: the file is held exclusively
        con = sqlite3.connect(view, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        holding.set()
        done.wait(1.5)
        con.execute("COMMIT")
        con.close()
    t = threading.Thread(target=builder)
    t.start()
    try:
        assert holding.wait(10)
        monkeypatch.setattr(conn, "BUSY_MS", 100)  # (far shorter than the build)
        ws = Workspace(repo.path)
        assert ws.state()["event_count"] == want["event_count"]
        assert refresh.open_index(ws).lock_path is not None  # answered from the cache, not rebuilt in memory
    finally:
        done.set()
        t.join()
