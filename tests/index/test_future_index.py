"""Table ``future``: the events that may be dated ahead of a reader's clock, kept in step as folds extend.

A store written today has every event inside the window the index keeps for clock diagnostics; held in a
table (by each event's latest time) a read asks only for the events past its tolerance and an extension
deletes only the rows that fell behind.  The state must still equal a full reduce (``assert_matches``).
"""
from __future__ import annotations

from test_index import assert_matches, from_index

from handoff.app.workspace import Workspace
from handoff.core import ids, model
from handoff.core.yaml import codec
from handoff.index import refresh, save


def _rows(path) -> list[str]:
    ws = Workspace(path)
    ws.state(refresh=True)
    db = refresh.open_index(ws).connect()
    return [eid for (eid,) in db.execute("SELECT id FROM future ORDER BY id")]


def _write(root, ev: dict) -> None:
    path = root / model.event_path(ev)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codec.dump(ev))


def test_future_rows_follow_extensions_and_the_horizon(repo, monkeypatch):
    repo.session("alpha", "general", "sess_a")
    for i in range(3):
        repo.ok("send", "--session", "sess_a", "--channel", "general", "-m", f"m{i}")
    want = assert_matches(repo.path)
    assert want["diagnostics"] == []
    recent = _rows(repo.path)
    assert len(recent) == want["event_count"]  # written today: all inside the window, none reported
    root = repo.path / ".handoffs"
    says = sorted(p for p in repo.event_files() if ".say." in p.name)
    template = codec.load(says[-1].read_bytes())
    ahead_ms = 4_000_000_000_000  # sorts after everything: the fold extends
    ahead = dict(template, id=model.new_event_id("say", ids.encode_base32(ahead_ms, 10) + "1" * 16),
                 hlc=f"{ahead_ms:016d}-00000", ts=model.format_ts(ahead_ms), body={"text": "from the future"})
    _write(root, ahead)
    before = dict(refresh.stats.STATS)
    want = assert_matches(repo.path)
    assert refresh.stats.STATS["extend"] > before["extend"] and refresh.stats.STATS["refold"] == before["refold"]
    assert [d["id"] for d in want["diagnostics"] if d["reason_code"] == "future_timestamp"] == [ahead["id"]]
    assert _rows(repo.path) == sorted(recent + [ahead["id"]])
    # a month later (the horizon moved past today's events): the next extension drops their rows
    real = save.future_horizon
    monkeypatch.setattr(save, "future_horizon", lambda: _later(real, 60 * 86_400_000))
    later_ms = ahead_ms + 1000
    _write(root, dict(template, id=model.new_event_id("say", ids.encode_base32(later_ms, 10) + "2" * 16),
                      hlc=f"{later_ms:016d}-00000", ts=model.format_ts(later_ms), body={"text": "later"}))
    from_index(repo.path)
    assert len(_rows(repo.path)) == 2 and ahead["id"] in _rows(repo.path)
    want = assert_matches(repo.path)
    assert len([d for d in want["diagnostics"] if d["reason_code"] == "future_timestamp"]) == 2


def _later(real, shift_ms: int) -> tuple[int, str, str, str]:
    ms = real()[0] + shift_ms
    return ms, model.format_ts(ms), f"{ms:016d}", save.ulid_prefix(ms)
