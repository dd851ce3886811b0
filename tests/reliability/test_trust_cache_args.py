"""Trust under hostile input: a damaged cache repairs itself, bad arguments are refused.

The cache under ``.git/handoff/cache`` is real SQLite, really damaged on disk
(single bytes flipped at chosen offsets, files cut short, its WAL and -shm
damaged, the folder deleted by another process while reads run): every
command still answers exactly what an undamaged run answers, says once on
stderr that it rebuilt the cache, and the next run is quiet.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from support.reliability import child_env

REBUILT = "rebuilt it from the event files"


def cache_dir(repo):
    from handoff.app.workspace import Workspace
    return Workspace(repo.path).paths.shared / "cache"


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A repo with two sessions, 30 messages (some answered) and a warm cache; plus a copy of that cache."""
    from conftest import make_repo
    base = tmp_path_factory.mktemp("cache")
    home = base / "home"
    home.mkdir()
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    (home / ".gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n[init]\n\tdefaultBranch = main\n")
    try:
        repo = make_repo(base / "repo")
        repo.session("alice", "general", "sess_alice")
        bob = repo.session("bob", "general", "sess_bob")
        for i in range(30):
            repo.ok("send", "--session", "sess_alice", "--channel", "general", "--no-commit",
                    "--text", f"message {i} " + "x" * 150, "--to", bob["peer_id"], "--work", f"work_w{i % 4}")
        repo.git("add", "-A")
        repo.git("commit", "-qm", "events")
        repo.ok("status")
        pristine = base / "pristine"
        shutil.copytree(cache_dir(repo), pristine)
        yield repo, pristine
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home


READS = (["status"], ["inbox", "--session", "sess_bob"], ["log"], ["verify"],
         ["threads", "list", "--channel", "general"])


def restore(repo, pristine, files: dict[str, bytes] | None = None) -> None:
    cache = cache_dir(repo)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(pristine, cache)
    for name, data in (files or {}).items():
        (cache / name).write_bytes(data)


def answers(repo) -> tuple[list, str]:
    """Each read's (exit code, JSON output), then a send and the inbox after it; and all of stderr."""
    out, err = [], ""
    for args in READS:
        r = repo.h(*args, "-o", "json")
        out.append((r.code, r.out))
        err += r.err
    events = repo.path / ".handoffs" / "events"
    before = set(events.rglob("*"))
    r = repo.h("send", "--session", "sess_alice", "--channel", "general", "--text", "after", "--no-commit",
               "-o", "json")
    err += r.err
    out.append(r.code)
    r2 = repo.h("inbox", "--session", "sess_bob", "-o", "json")
    err += r2.err
    out.append((r2.code, r2.json["count"]))
    for p in sorted(set(events.rglob("*")) - before, reverse=True):  # undo the send: every case starts alike
        p.unlink() if p.is_file() else p.rmdir()
    return out, err


def settles(repo, want, what: str, noticed: bool) -> None:
    """After a damaged run: the next runs answer as undamaged.  Damage that run found was rebuilt, so the
    next is quiet; damage it never read (a page no command touched: a refold drops it, an extension may keep
    it) is rebuilt, and said once, when a later read meets it, and the run after that is quiet."""
    again, err = answers(repo)
    assert again == want and "Traceback" not in err, (what, err)
    if noticed:
        assert err == "", (what, err)
        return
    assert len([n for n in err.splitlines() if n]) <= 1, (what, err)
    third, err3 = answers(repo)
    assert third == want and err3 == "", (what, err3)


def page_size(data: bytes) -> int:
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def damages(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """Single-byte flips at chosen offsets (each alone), and cuts."""
    ps = page_size(data)
    pages = len(data) // ps
    offsets = {"magic": 0, "page size": 16, "write version": 18, "page count": 28, "schema cookie": 40,
               "page 1 b-tree header": 100, "page 1 cell count": 103,
               "middle page header": (pages // 2) * ps, "middle page cells": (pages // 2) * ps + 3,
               "last page header": (pages - 1) * ps, "last page cells": (pages - 1) * ps + 5}
    out = []
    for what, off in offsets.items():
        b = bytearray(data)
        b[off] ^= 0xFF
        out.append((f"{name}: flip {what} ({off})", bytes(b)))
    out.append((f"{name}: cut to half", data[: (pages // 2) * ps]))
    out.append((f"{name}: cut to 50 bytes", data[:50]))
    out.append((f"{name}: empty", b""))
    return out


def test_single_byte_damage_to_either_cache_file_is_rebuilt_once(populated):
    repo, pristine = populated
    restore(repo, pristine)
    want, err = answers(repo)
    assert err == "" and want[-1][0] == 0, err
    cases = 0
    for name in sorted(os.listdir(pristine)):
        if not name.endswith(".sqlite3"):
            continue
        for what, data in damages(name.split("-")[0], (pristine / name).read_bytes()):
            restore(repo, pristine, {name: data})
            got, err = answers(repo)
            assert got == want, what
            assert "Traceback" not in err, (what, err)
            notes = [line for line in err.splitlines() if line]
            assert len(notes) <= 1 and all(REBUILT in n for n in notes), (what, err)
            if "page 1" in what or "magic" in what or "cut" in what:
                assert len(notes) == 1, (what, err)  # (a page no command reads may go unnoticed)
            settles(repo, want, what, noticed=bool(notes))
            cases += 1
    assert cases == 28
    print(f"\ncache damage: {cases} cases, each answered as undamaged")


def test_damaged_wal_and_shm_are_rebuilt(populated, tmp_path):
    """The cache as a killed command leaves it: a WAL with frames not yet copied back, and its -shm."""
    repo, pristine = populated
    restore(repo, pristine)
    cache = cache_dir(repo)
    view = next(p for p in cache.iterdir() if p.name.startswith("view-") and p.name.endswith(".sqlite3"))
    holder = sqlite3.connect(view)  # (while it is open, the last command's WAL is not folded back on close)
    try:
        holder.execute("SELECT count(*) FROM meta").fetchone()
        repo.ok("send", "--session", "sess_alice", "--channel", "general", "--text", "in the wal", "--no-commit")
        snap = tmp_path / "snap"
        shutil.copytree(cache, snap)
    finally:
        holder.close()
    assert (snap / f"{view.name}-wal").stat().st_size > 0
    restore(repo, snap)
    want, err = answers(repo)
    assert err == "", err
    wal = (snap / f"{view.name}-wal").read_bytes()
    shm = (snap / f"{view.name}-shm").read_bytes()
    cases = []
    for what, name, off in (("wal magic", "-wal", 0), ("wal salt", "-wal", 16), ("wal first frame", "-wal", 32),
                            ("wal last frame page", "-wal", len(wal) - 100), ("shm header", "-shm", 0),
                            ("shm index", "-shm", 200)):
        data = bytearray(wal if name == "-wal" else shm)
        data[off] ^= 0xFF
        cases.append((what, {f"{view.name}{name}": bytes(data)}))
    cases.append(("wal cut", {f"{view.name}-wal": wal[: len(wal) // 2]}))
    for what, files in cases:
        restore(repo, snap, files)
        got, err = answers(repo)
        assert got == want, what
        assert "Traceback" not in err and len(err.splitlines()) <= 1, (what, err)
        settles(repo, want, what, noticed=bool(err.strip()))


def test_a_locked_cache_is_waited_for_not_dropped(populated, monkeypatch):
    """Lock contention is not damage: the command answers (from memory after the wait) and deletes nothing."""
    from handoff.index import conn
    repo, pristine = populated
    restore(repo, pristine)
    want = repo.j("inbox", "--session", "sess_bob")["count"]
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--text", "one more", "--no-commit",
            "--to", "bob.sess_bob")
    view = next(p for p in cache_dir(repo).iterdir() if p.name.startswith("view-") and p.name.endswith(".sqlite3"))
    inode = view.stat().st_ino
    monkeypatch.setattr(conn, "BUSY_MS", 300)
    holder = sqlite3.connect(view, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another command's write, held
        r = repo.h("inbox", "--session", "sess_bob", "-o", "json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.code == 0 and r.json["count"] == want + 1, r.err
    assert REBUILT not in r.err
    assert view.stat().st_ino == inode
    for p in repo.path.joinpath(".handoffs", "events").rglob("*.yaml"):
        if "one more" in p.read_text():
            p.unlink()


def test_errors_are_sorted_by_what_they_mean(tmp_path):
    """index.trouble on real SQLite errors from real files."""
    from handoff import index

    def error_of(fn):
        try:
            fn()
        except Exception as exc:
            return exc
        raise AssertionError("no error")

    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 300)
    assert index.trouble(error_of(lambda: sqlite3.connect(junk).execute("SELECT * FROM meta"))) == "damaged"
    good = tmp_path / "good.sqlite3"
    a = sqlite3.connect(good, isolation_level=None)
    a.execute("CREATE TABLE t (x)")
    a.execute("BEGIN IMMEDIATE")
    b = sqlite3.connect(good, timeout=0.05)
    assert index.trouble(error_of(lambda: b.execute("INSERT INTO t VALUES (1)"))) == "busy"
    a.execute("ROLLBACK")
    ro = sqlite3.connect(f"file:{good}?mode=ro", uri=True)
    assert index.trouble(error_of(lambda: ro.execute("INSERT INTO t VALUES (1)"))) == "unusable"
    assert index.trouble(error_of(lambda: sqlite3.connect(tmp_path / "no" / "such.sqlite3"))) == "unusable"
    assert index.trouble(error_of(lambda: b.execute("SELECT * FROM missing"))) == "damaged"
    assert index.trouble(ValueError("raised elsewhere")) is None
    assert index.trouble(error_of(lambda: index.marshal.loads(b"\xff"))) is None  # (not raised in the index)


DELETE_LOOP = r"""
import io, sys, contextlib, traceback
from handoff.faces.cli import main
repo, rounds = sys.argv[1], int(sys.argv[2])
for i in range(rounds):
    for args in (["status"], ["inbox", "--session", "sess_bob"], ["log"], ["verify"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main([*args, "--repo", repo, "-o", "json"])
        except BaseException:
            rc = "exception"
            err.write(traceback.format_exc())
        if args[0] == "inbox" and rc == 0:
            import json
            print("inbox", json.loads(out.getvalue())["count"], flush=True)
        if rc != 0 or "Traceback" in err.getvalue():
            print("FAIL", args[0], rc, repr(err.getvalue()[-1500:]), flush=True)
"""


def test_reads_while_another_process_deletes_the_cache(populated):
    repo, pristine = populated
    restore(repo, pristine)
    want = repo.j("inbox", "--session", "sess_bob")["count"]
    cache = cache_dir(repo)
    deleter = subprocess.Popen(["bash", "-c", f"while true; do rm -rf '{cache}' 2>/dev/null; done"],
                               start_new_session=True)  # (its own group: the kill below takes a running rm too)
    try:
        readers = [subprocess.Popen([sys.executable, "-c", DELETE_LOOP, str(repo.path), "15"], env=child_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in readers]
    finally:
        os.killpg(deleter.pid, signal.SIGKILL)
        deleter.wait()
    for (out, err), p in zip(outs, readers):
        assert p.returncode == 0, err[-2000:]
        assert "FAIL" not in out and "Traceback" not in err, (out[-3000:], err[-2000:])
        assert out.split() == ["inbox", str(want)] * 15
    restore(repo, pristine)


# --------------------------------------------------------------------------- bad arguments


@pytest.fixture
def two(repo):
    repo.session("alice", "general", "sess_alice")
    bob = repo.session("bob", "general", "sess_bob")
    work = repo.j("request", "--session", "sess_alice", "--to", bob["peer_id"], "--channel", "general",
                  "-d", "do it")["work_id"]
    return repo, bob["peer_id"], work


def refused(repo, args, reason: str, code: int = 2, **kw) -> dict:
    """Run as a real process (a hang is a failure, not a stuck suite): refused with ``reason``, and the
    human form names it too, with no traceback."""
    r = repo.proc(*args, "-o", "json", timeout=60, **kw)
    assert r.returncode == code, (args, r.returncode, r.stdout[-500:], r.stderr[-1500:])
    err = json.loads(r.stdout)["error"]
    assert err["reason_code"] == reason and err["message"] and err["hint"], err
    h = repo.proc(*args, timeout=60, **kw)
    assert h.returncode == code and "Traceback" not in h.stderr and f"({reason})" in h.stderr, h.stderr[-1500:]
    return err


def test_init_where_handoffs_is_a_file(tmp_path):
    from conftest import make_repo
    repo = make_repo(tmp_path / "r", init=False)
    (repo.path / ".handoffs").write_text("not a folder\n")
    err = refused(repo, ["init"], "not_a_directory")
    assert ".handoffs" in err["message"]
    assert (repo.path / ".handoffs").read_text() == "not a folder\n"
    (repo.path / ".handoffs").unlink()
    (repo.path / ".handoffs").mkdir()
    (repo.path / ".handoffs" / "events").write_text("")
    refused(repo, ["init"], "not_a_directory")


def test_at_file_arguments_are_capped(two, tmp_path):
    repo, bob, work = two
    before = sorted(repo.event_files())
    send = ["send", "--session", "sess_alice", "--channel", "general"]
    err = refused(repo, [*send, "--body", "@/dev/zero"], "argument_too_large")
    assert "/dev/zero" in err["message"] and "1 MiB" in err["message"]
    refused(repo, ["complete", work, "--session", "sess_bob", "--result", "@/dev/zero"], "argument_too_large")
    refused(repo, ["request", "--session", "sess_alice", "--to", bob, "--channel", "general", "-d", "x",
                   "--context", "@/dev/zero"], "argument_too_large")
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # (sparse: 50 MB without writing them)
    err = refused(repo, [*send, "--body", f"@{big}"], "argument_too_large")
    assert "50.0 MiB" in err["message"] and "52428800 bytes" in err["message"], err
    err = refused(repo, [*send, "--body", "@-"], "argument_too_large", input="x" * (2 * 1024 * 1024))
    assert "stdin" in err["message"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes to it: read as empty, never waited on
    refused(repo, [*send, "--body", f"@{fifo}"], "invalid_body")
    assert sorted(repo.event_files()) == before
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"text": "from a file"}))
    assert repo.j(*send, "--body", f"@{ok}")["kind"] == "say"


def test_times_and_timeouts_out_of_range(two):
    repo, bob, work = two
    before = sorted(repo.event_files())
    req = ["request", "--session", "sess_alice", "--to", bob, "--channel", "general", "-d", "x"]
    for deadline in ("99999999999999999", "9999999999999h", "99999999999w", "10000-01-01T00:00:00Z"):
        refused(repo, [*req, "--deadline", deadline], "invalid_argument")
    refused(repo, ["send", "--session", "sess_alice", "--channel", "general", "--text", "x",
                   "--expires-at", "99999999999999999"], "invalid_argument")
    for timeout in ("inf", "nan", "-1", "1e300"):
        refused(repo, ["wait", work, "--timeout", timeout], "invalid_argument")
    refused(repo, ["watch", "--session", "sess_bob", "--once", "--exec-timeout", "inf"], "invalid_argument")
    refused(repo, ["watch", "--session", "sess_bob", "--once", "--remind-every", "99999999999999999d"],
            "invalid_argument")
    assert sorted(repo.event_files()) == before
    assert repo.j(*req, "--deadline", "9999-12-31T00:00:00Z")["work_id"]
    assert repo.j(*req, "--deadline", "2h")["work_id"]


def test_ids_ending_in_a_newline_are_refused(two):
    repo, bob, work = two
    before = sorted(repo.event_files())
    send = ["send", "--session", "sess_alice", "--channel", "general", "--text", "x"]
    for args in ([*send, "--to", bob, "--work", "work_x\n"],
                 ["send", "--session", "sess_alice\n", "--channel", "general", "--text", "x"],
                 ["send", "--session", "sess_alice", "--channel", "general\n", "--text", "x"],
                 [*send, "--thread", "thread_abc\n"],
                 [*send, "--to", bob + "\n", "--work", "work_y"],
                 ["session", "new", "--agent", "carol", "--channel", "general", "--id", "sess_carol\n"],
                 ["accept", work + "\n", "--session", "sess_bob"]):
        r = repo.h(*args, "-o", "json")
        assert r.code == 2 and r.json["error"]["reason_code"] == "invalid_id", (args, r.code, r.out)
    assert sorted(repo.event_files()) == before


def test_grammars_and_file_patterns_end_at_the_end():
    from handoff.core import ids, model
    for kind, good in (("work", "work_x"), ("session", "sess_a"), ("channel", "general"),
                       ("thread", "thread_abc"), ("peer", "bob.sess_b"), ("message", "msg_abc")):
        assert ids.is_valid(kind, good) and not ids.is_valid(kind, good + "\n"), kind
    name = "msg_01jv8zk3m2n4p5q6r7s8t9v0wx.say.alice.sess_a.yaml"
    assert model.FILENAME_RE.match(name) and not model.FILENAME_RE.match(name + "\n")
    assert not model.HLC_RE.match("0001796635502769-00000\n")
    assert model.parse_hlc("0001796635502769-00000\n") is None
    from handoff.core import schema
    with pytest.raises(schema.ShapeError):
        schema.check_shape({"ts": "2026-01-01T00:00:00Z\n"}, True)


def test_doctor_reports_a_cache_it_cannot_open(populated):
    repo, pristine = populated
    restore(repo, pristine)
    checks = {c["check"]: c for c in repo.j("doctor")["checks"]}
    assert checks["cache"]["status"] == "ok"
    view = next(n for n in os.listdir(pristine) if n.startswith("view-") and n.endswith(".sqlite3"))
    data = bytearray((pristine / view).read_bytes())
    data[0] ^= 0xFF
    restore(repo, pristine, {view: bytes(data)})
    r = repo.h("doctor", "-o", "json")
    cache = {c["check"]: c for c in r.json["checks"]}["cache"]
    assert cache["status"] == "warn" and view in cache["message"] and "rebuilt" in cache["message"], cache
    assert {c["check"]: c for c in repo.j("doctor")["checks"]}["cache"]["status"] == "ok"  # (doctor read it)
    restore(repo, pristine)
