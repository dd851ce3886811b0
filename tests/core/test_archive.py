"""Archive segments and the compaction rule (pure): sealed events reduce to the same state."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pure import Log

from handoff.core import archive, compaction, reducer, session_ops
from handoff.core.model import TERMINAL_STATES, parse_ts

P1 = ".handoffs/events/2030-01/01/msg_a.say.x.yaml"
P2 = ".handoffs/events/2030-01/02/msg_b.say.x.yaml"


def test_encode_decode_round_trip_and_determinism():
    files = {P2: b"b: 2\n", P1: b"a: 1\n\x00 odd bytes\n"}
    data = archive.encode(files)
    assert data == archive.encode(dict(reversed(list(files.items()))))  # order of the dict does not matter
    assert data.startswith(b"handoff-archive v1\nfile " + P1.encode())
    entries = archive.decode(data)
    assert [(p, b) for p, _blob, b in entries] == sorted(files.items())
    assert all(blob == archive.blob_id(b) for _p, blob, b in entries)
    segs = archive.segments_of(files)
    (path, content), = segs.items()
    assert path.startswith(".handoffs/archive/2030-01/") and content == data
    assert archive.check(path, content) == (entries, [])


def test_blob_id_is_gits():
    assert archive.blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert archive.blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_segments_per_month():
    other = ".handoffs/events/2030-02/01/msg_c.say.x.yaml"
    segs = archive.segments_of({P1: b"1", other: b"2"})
    assert sorted(p.split("/")[2] for p in segs) == ["2030-01", "2030-02"]


@pytest.mark.parametrize("tamper, problem", [
    (lambda d: d.replace(b"a: 1", b"a: 9"), "do not match its blob id"),
    (lambda d: d[:-3], "cut short"),
    (lambda d: b"handoff-archive v2" + d[18:], "header"),
    (lambda d: d.replace(b"file .handoffs/events", b"file .handoffs/config", 1), "not an event file path"),
])
def test_check_finds_tampering(tamper, problem):
    data = archive.encode({P1: b"a: 1\n", P2: b"b: 2\n"})
    path = archive.segment_path(data, "2030-01")
    _good, problems = archive.check(path, tamper(data))
    assert problems and any(problem in p for p in problems), problems


def test_check_refuses_a_renamed_or_misplaced_segment():
    data = archive.encode({P1: b"a: 1\n"})
    assert "sha256" in archive.check(archive.segment_path(b"x", "2030-01"), data)[1][0]
    assert "month" in archive.check(archive.segment_path(data, "2030-02"), data)[1][0]
    assert archive.check(".handoffs/archive/x.archive", data)[1]


def test_out_of_order_entries_are_malformed():
    a = archive.encode({P2: b"2"})
    b = archive.encode({P1: b"1"})
    with pytest.raises(archive.ArchiveError):
        archive.decode(a + b[len(archive.HEADER):])


# ------------------------------------------------------------------ the rule

MOVES = ["send", "request", "accept", "complete", "fail", "cancel", "close", "progress"]


def _history(moves: list[tuple[str, int]]) -> Log:
    log = Log()
    sids = ["sess_a", "sess_b", "sess_c"]
    for sid in sids:
        log.open(sid.split("_")[1], "dev", sid=sid)
    works: list[str] = []
    for move, pick in moves:
        state = log.state()
        live = [s for s in sids if state["sessions"][s]["state"] == "active"]
        if not live:
            break
        sid = live[pick % len(live)]
        other = [s for s in live if s != sid]
        open_work = [w for w in works if state["work"][w]["state"] not in TERMINAL_STATES]
        try:
            if move == "send":
                log.send(sid, text=f"note {pick}")
            elif move == "request" and other:
                works.append(log.request(sid, state["sessions"][other[0]]["peer_id"])["work_id"])
            elif move == "close":
                log.write(session_ops.session_close(state, log.session(sid)))
            elif open_work and move not in ("request", "close"):
                w = open_work[pick % len(open_work)]
                verb = {"accept": ("accept",), "progress": ("trace", "working"), "complete": ("trace", "completed"),
                        "fail": ("trace", "failed"), "cancel": ("cancel",)}[move]
                log.verb(verb[0], sid, w, *verb[1:])
        except Exception as exc:  # a refused move (not a participant, already closed...) writes nothing
            if type(exc).__name__ != "HandoffError":
                raise
        log.now += 3600_000 * (pick % 5)
    return log


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=st.lists(st.tuples(st.sampled_from(MOVES), st.integers(0, 7)), min_size=3, max_size=30),
       cut_frac=st.floats(0, 1.2))
def test_sealed_events_reduce_to_the_same_state(moves, cut_frac):
    log = _history(moves)
    records = log.records()
    before = reducer.reduce(records)
    first, last = parse_ts(log.events[0]["ts"]), parse_ts(log.events[-1]["ts"])
    cut = int(first + (last - first) * cut_frac)
    sealed = set(compaction.sealable(records, before, cut))
    by_path = {r["path"]: r for r in records}
    files = {f".handoffs/{p}": reducer.codec.dump(by_path[p]["event"]) for p in sealed}
    archived = [reducer.decode(path[len(".handoffs/"):], body)
                for seg, data in archive.segments_of(files).items()
                for path, _blob, body in archive.check(seg, data)[0]] if files else []
    remaining = [r for r in records if r["path"] not in sealed]
    assert len(archived) == len(sealed)
    assert reducer.reduce(remaining + archived) == before
    # and sealing the same files twice (a segment and the file still there, two segments) changes nothing
    assert reducer.reduce(records + archived + archived) == before
    for r in records:  # open work and open sessions are never touched
        ev = r["event"]
        if r["path"] not in sealed:
            continue
        assert parse_ts(ev["ts"]) < cut
        if ev.get("work_id") in before["work"]:
            assert before["work"][ev["work_id"]]["state"] in TERMINAL_STATES
        if ev["kind"] in ("session-open", "session-close"):
            assert before["sessions"][ev["session_id"]]["state"] == "closed"


def test_open_work_and_sessions_stay():
    log = Log()
    log.open("a", "dev", sid="sess_a")
    log.open("b", "dev", sid="sess_b")
    done = log.request("sess_a", "b.sess_b")["work_id"]
    log.verb("trace", "sess_b", done, "completed")
    live = log.request("sess_a", "b.sess_b")["work_id"]
    log.send("sess_a", text="chatter")
    log.write(session_ops.session_close(log.state(), log.session("sess_b")))
    state = log.state()
    sealed = compaction.sealable(log.records(), state, log.now + 1)
    kinds = {(r["event"]["kind"], r["event"].get("work_id")) for r in log.records() if r["path"] in sealed}
    assert ("say", done) in kinds and ("trace", done) in kinds and ("say", None) in kinds
    assert not any(w == live for _k, w in kinds)
    assert ("session-close", None) in kinds  # sess_b closed
    opens = [r["event"]["session_id"] for r in log.records() if r["path"] in sealed and r["event"]["kind"] == "session-open"]
    assert opens == ["sess_b"]  # sess_a is still open
    assert compaction.sealable(log.records(), state, 0) == []


def test_vet_accepts_exactly_the_archived_deletions():
    from handoff.core.checks import Change
    seg_bytes = archive.encode({P1: b"a: 1\n"})
    seg = archive.segment_path(seg_bytes, "2030-01")
    z = "0" * 40
    changes = [Change("000000", "100644", z, "f" * 40, "A", seg),
               Change("100644", "000000", archive.blob_id(b"a: 1\n"), z, "D", P1),  # sealed: accepted
               Change("100644", "000000", archive.blob_id(b"b: 2\n"), z, "D", P2),  # not in the archive
               Change("000000", "100644", z, "e" * 40, "A", ".handoffs/archive/notes.txt")]
    left, findings = archive.vet(changes, {seg: seg_bytes})
    assert [c.path for c in left] == [P2]
    assert [(f["path"], f["code"], f["severity"]) for f in findings] == [
        (".handoffs/archive/notes.txt", "archive_invalid", "error")]
    # the same path with other bytes in the archive does not account for the deletion
    other = archive.encode({P1: b"a: 2\n"})
    left, _ = archive.vet(changes[1:2], {archive.segment_path(other, "2030-01"): other})
    assert [c.path for c in left] == [P1]
    # a broken segment already on the base is a warning; one the range adds, an error
    broken = seg_bytes.replace(b"a: 1", b"a: 9")
    assert archive.vet([], {seg: broken})[1][0]["severity"] == "warning"
    assert archive.vet(changes[:1], {seg: broken})[1][0]["severity"] == "error"
