"""`handoff compact`: old, finished history moves into archive segments, every read stays the same,
open work is untouched, and `verify` accepts exactly the removals the archive accounts for."""
from __future__ import annotations

import json
import os

import pytest

from handoff import Handoff
from handoff.app.compact import cut_of
from handoff.app.workspace import Workspace
from handoff.core import archive, compaction
from handoff.git import commit as gitcommit
from handoff.store import archive as store_archive
from handoff.store import clock

OLD = {"HANDOFF_NOW": "2026-09-01T10:00:00Z"}
LATER = {"HANDOFF_NOW": "2026-11-20T10:00:00Z"}
NOW = {"HANDOFF_NOW": "2026-12-01T10:00:00Z"}


def history(repo) -> dict:
    """Old finished work, old open work, a closed session, old chatter, and a recent message."""
    def j(*args, env=OLD):
        return repo.j(*args, env=env)
    a = j("session", "new", "--agent", "alice", "--channel", "dev", "--id", "sess_alice")["session_id"]
    b = j("session", "new", "--agent", "bob", "--channel", "dev", "--id", "sess_bob")["session_id"]
    c = j("session", "new", "--agent", "carol", "--channel", "dev", "--id", "sess_carol")["session_id"]
    done = j("request", "--session", a, "--to", "bob", "--channel", "dev", "-d", "review it")["handoff_id"]
    j("accept", done, "--session", b)
    j("complete", done, "--session", b, "-m", "done")
    live = j("request", "--session", a, "--to", "bob", "--channel", "dev", "-d", "still going")["handoff_id"]
    j("accept", live, "--session", b)
    j("send", "--session", c, "--channel", "dev", "--thread", "thread_chat", "-m", "hello all")
    j("session", "close", c)
    j("send", "--session", a, "--channel", "dev", "--thread", "thread_chat", "-m", "recent news", env=LATER)
    return {"a": a, "b": b, "done": done, "live": live}


def reads(repo, h) -> dict:
    out = {}
    for sid in (h["a"], h["b"]):
        out[f"inbox {sid}"] = repo.j("inbox", "--session", sid, env=NOW)
    for wid in (h["done"], h["live"]):
        out[f"work {wid}"] = repo.j("work", "lookup", wid, env=NOW)
    out["log"] = repo.j("log", env=NOW)
    out["metrics"] = repo.j("metrics", env=NOW)
    out["report"] = repo.j("report", env=NOW)
    out["report"].pop("head")  # (the compaction commit is a new tip; what it holds is the same)
    out["sessions"] = repo.j("session", "list", env=NOW)
    for entry in out["log"].get("entries", []) if isinstance(out["log"], dict) else out["log"]:
        entry.pop("commit", None)  # (the adding commit is checked on its own below)
    return out


@pytest.fixture
def compacted(repo):
    h = history(repo)
    before_files = repo.event_files()
    before = reads(repo, h)
    log_before = repo.j("log", env=NOW)
    result = repo.j("compact", "--before", "30d", env=NOW)
    return repo, h, before_files, before, log_before, result


def test_compaction_keeps_every_read(compacted):
    repo, h, before_files, before, log_before, r = compacted
    assert r["committed"] and r["commit"] and r["sealed"] == r["removed"] > 0
    assert len(r["segments"]) == 1 and r["segments"][0].startswith(".handoffs/archive/2026-09/")
    after_files = repo.event_files()
    assert len(after_files) == len(before_files) - r["removed"] == r["remaining"]
    assert repo.git("status", "--porcelain") == ""  # one commit: the segment in, the files out
    assert repo.git("show", "--stat", "--format=%s", "HEAD").startswith("handoff: compact")
    after = reads(repo, h)
    for key in before:
        assert json.dumps(after[key], sort_keys=True) == json.dumps(before[key], sort_keys=True), key
    doctor = repo.h("doctor", "-o", "json", env=NOW)
    assert doctor.code == 0, doctor.out
    assert [c["status"] for c in doctor.json["checks"] if c["check"] == "archive"] == ["ok"]
    # log still names the commit that added each archived file (its adding commit is still in history)
    assert [e.get("commit") for e in _entries(repo.j("log", env=NOW))] == [e.get("commit") for e in _entries(log_before)]


def _entries(log):
    return log.get("entries", []) if isinstance(log, dict) else log


def test_open_work_and_sessions_stay_in_the_work_tree(compacted):
    repo, h, _before_files, _before, _log, _r = compacted
    names = [p.name for p in repo.event_files()]
    texts = "".join(p.read_text() for p in repo.event_files())
    assert h["live"] in texts and h["done"] not in texts
    assert any("sess_alice" in n or "session-open" in n for n in names)
    assert "recent news" in texts and "hello all" not in texts
    assert "sess_carol" not in texts  # closed before the cut: sealed


def test_dry_run_and_a_second_run_change_nothing(compacted):
    repo, _h, _bf, _b, _l, r = compacted
    head = repo.git("rev-parse", "HEAD")
    again = repo.j("compact", "--before", "30d", env=NOW)
    assert again["sealed"] == 0 and again["removed"] == 0 and not again["committed"]
    assert repo.git("rev-parse", "HEAD") == head
    dry = repo.j("compact", "--before", "1d", "--dry-run", env=NOW)
    assert dry["dry_run"] and repo.git("rev-parse", "HEAD") == head


def test_verify_accepts_the_compaction_and_refuses_other_deletions(compacted):
    repo, _h, _bf, _b, _l, _r = compacted
    r = repo.h("verify", "--against", "HEAD~1", "-o", "json")
    assert r.code == 0, r.out
    assert r.json["ok"] and r.json["errors"] == 0
    victim = repo.event_files()[0].relative_to(repo.path)
    repo.git("rm", "-q", str(victim))
    repo.git("commit", "-qm", "drop one")
    r = repo.h("verify", "--against", "HEAD~1", "-o", "json")
    assert r.code == 5 and {f["code"] for f in r.json["findings"] if f["severity"] == "error"} == {"deleted"}


def test_verify_refuses_a_tampered_segment(compacted):
    repo, _h, _bf, _b, _l, r = compacted
    seg = repo.path / r["segments"][0]
    data = seg.read_bytes()
    i = data.index(b"review it")
    seg.write_bytes(data[:i] + b"REVIEW IT" + data[i + 9:])
    repo.git("commit", "-qam", "edit the archive")
    doctor = repo.h("doctor", "-o", "json", env=NOW)
    assert doctor.code == 1 and [c["status"] for c in doctor.json["checks"] if c["check"] == "archive"] == ["fail"]
    r2 = repo.h("verify", "--against", "HEAD~2", "-o", "json")
    assert r2.code == 5, r2.out
    codes = {f["code"] for f in r2.json["findings"] if f["severity"] == "error"}
    assert "archive_invalid" in codes, r2.json["findings"]


def test_refused_while_a_merge_is_in_progress(repo):
    history(repo)
    (repo.path / ".git" / "MERGE_HEAD").write_text(repo.git("rev-parse", "HEAD") + "\n")
    r = repo.h("compact", "--before", "30d", "-o", "json", env=NOW)
    assert r.code == 1 and "merge" in r.out


def test_bad_before_is_a_usage_error(repo):
    assert repo.h("compact", "--before", "soon", env=NOW).code == 2


def test_the_api_compacts_too(repo):
    history(repo)
    os.environ["HANDOFF_NOW"] = NOW["HANDOFF_NOW"]
    try:
        r = Handoff(repo.path).compact(before="30d", dry_run=True)
    finally:
        os.environ.pop("HANDOFF_NOW")
    assert r["dry_run"] and r["sealed"] > 0 and not r["committed"]


def test_a_compaction_cut_short_is_finished_by_the_next(repo, monkeypatch):
    """Killed after the segment is published and the files removed, before the commit: every read is the
    same meanwhile, and the next compact commits what is there."""
    h = history(repo)
    before = reads(repo, h)
    monkeypatch.setattr(gitcommit, "_sync_real_index", lambda paths, info: "simulated crash")
    r = repo.j("compact", "--before", "30d", env=NOW)
    assert not r["committed"] and "simulated crash" in r["commit_skipped"]
    monkeypatch.undo()
    status = repo.git("status", "--porcelain", "--untracked-files=all")
    assert " D .handoffs/events/" in status and "?? .handoffs/archive/" in status
    assert json.dumps(reads(repo, h)["log"]) == json.dumps(before["log"])
    again = repo.j("compact", "--before", "30d", env=NOW)
    assert again["committed"] and again["removed"] == r["removed"] and again["sealed"] == 0
    assert again["segments"] == r["segments"]
    assert repo.git("status", "--porcelain") == ""
    assert repo.h("verify", "--against", "HEAD~1", "-o", "json").code == 0


def test_a_segment_published_before_any_removal_is_reused(repo):
    """Killed between the segment's link and the first removal: both are there, read once; the next
    compact writes the same segment (same name), removes the files and commits."""
    h = history(repo)
    dry = repo.j("compact", "--before", "30d", "--dry-run", env=NOW)
    os.environ.update(NOW)
    try:
        ws = Workspace(repo.path)
        rels = compaction.sealable(ws.records(), ws.state(), cut_of("30d", clock.now_ms()))
    finally:
        os.environ.pop("HANDOFF_NOW")
    files = {f".handoffs/{r}": (repo.path / ".handoffs" / r).read_bytes() for r in rels}
    (seg, data), = archive.segments_of(files).items()
    store_archive.publish(repo.path, seg, data, repo.path / ".git" / "handoff" / "tmp")
    assert [seg] == dry["segments"]
    before = reads(repo, h)
    r = repo.j("compact", "--before", "30d", env=NOW)
    assert r["committed"] and r["segments"] == [seg] and r["removed"] == len(rels)
    assert repo.git("status", "--porcelain") == ""
    assert json.dumps(reads(repo, h)["log"]) == json.dumps(before["log"])
