"""Two clones that compact the same month merge through the bare remote without a conflict, and read
the same state as before."""
from __future__ import annotations

import json

from test_compact import NOW, OLD, history


def _state(repo) -> str:
    out = {"work": repo.j("work", "list", env=NOW), "sessions": repo.j("session", "list", env=NOW),
           "inbox": repo.j("inbox", "--session", "sess_bob", env=NOW),
           "metrics": repo.j("metrics", env=NOW)}
    log = repo.j("log", env=NOW)
    out["log"] = [{k: v for k, v in e.items() if k != "commit"} for e in log["entries"]] if isinstance(log, dict) \
        else [{k: v for k, v in e.items() if k != "commit"} for e in log]
    return json.dumps(out, sort_keys=True)


def _pull(repo) -> None:
    repo.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")


def _segments(repo) -> list[str]:
    return sorted(str(p.relative_to(repo.path)) for p in (repo.path / ".handoffs" / "archive").rglob("*.archive"))


def test_two_clones_compacting_the_same_history_merge_cleanly(clones):
    a = clones("a")
    h = history(a)
    a.git("push", "-q", "origin", "main")
    b = clones("b")
    want = _state(a)
    assert _state(b) == want
    ra = a.j("compact", "--before", "30d", env=NOW)
    b.j("send", "--session", "sess_bob", "--channel", "dev", "--thread", "thread_bbb", "-m", "b writes on", env=NOW)
    rb = b.j("compact", "--before", "30d", env=NOW)
    assert ra["segments"] == rb["segments"] and ra["commit"] != rb["commit"]  # same bytes, two commits
    a.git("push", "-q", "origin", "main")
    _pull(b)  # a real merge: both sides added the same segment and removed the same files
    assert b.git("status", "--porcelain") == ""
    assert len(b.git("log", "-1", "--format=%P").split()) == 2
    b.git("push", "-q", "origin", "main")
    _pull(a)
    assert _state(a) == _state(b) != want  # (b's new message)
    assert json.loads(_state(a))["work"] == json.loads(want)["work"]
    assert _segments(a) == _segments(b) == ra["segments"]
    assert a.h("verify", "--against", "HEAD~2", "-o", "json").code == 0
    assert h["live"] in "".join(p.read_text() for p in b.event_files())


def test_different_sets_sealed_on_two_branches_merge_side_by_side(clones):
    a = clones("a")
    history(a)
    a.git("push", "-q", "origin", "main")
    b = clones("b")
    # b has one more old, finished exchange that a has not seen yet
    s = b.j("session", "new", "--agent", "dave", "--channel", "dev", "--id", "sess_dave", env=OLD)["session_id"]
    b.j("send", "--session", s, "--channel", "dev", "--thread", "thread_bbb", "-m", "only on b", env=OLD)
    b.j("session", "close", s, env=OLD)
    a.j("send", "--session", "sess_alice", "--channel", "dev", "--thread", "thread_aaa", "-m", "a writes on",
        env=NOW)
    ra = a.j("compact", "--before", "30d", env=NOW)
    rb = b.j("compact", "--before", "30d", env=NOW)
    assert ra["segments"] != rb["segments"] and rb["sealed"] == ra["sealed"] + 3
    a.git("push", "-q", "origin", "main")
    _pull(b)
    assert b.git("status", "--porcelain") == ""
    b.git("push", "-q", "origin", "main")
    _pull(a)
    assert _state(a) == _state(b)
    assert len(_segments(a)) == 2  # two segments of the same month, side by side
    texts = json.loads(_state(a))
    assert any("only on b" in json.dumps(e) for e in texts["log"]) and any("a writes on" in json.dumps(e)
                                                                          for e in texts["log"])
    # a compaction after the merge finds nothing new to seal, and the merge commit verifies
    assert a.j("compact", "--before", "30d", env=NOW)["sealed"] == 0
    assert a.h("verify", "--against", "HEAD~1", "-o", "json").code == 0


def test_a_compacted_branch_on_a_remote_ref_is_read_with_its_archive(clones):
    a = clones("a")
    b = clones("b")
    history(a)
    a.j("compact", "--before", "30d", env=NOW)
    a.git("push", "-q", "origin", "main")
    b.git("fetch", "-q", "origin")  # not merged: b reads a's events from origin/main, sealed ones included
    want = a.j("work", "list", env=NOW)
    got = b.j("work", "list", env=NOW)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    logged = {e["id"] for e in _entries(b.j("log", env=NOW))}
    assert len(logged) > 10 and logged == {e["id"] for e in _entries(a.j("log", env=NOW))}


def _entries(log):
    return log["entries"] if isinstance(log, dict) else log
