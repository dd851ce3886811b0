"""The index reads archive segments beside the work tree, and stays equal to a full reduce."""
from __future__ import annotations

import json
import os
import random

from test_index import assert_matches, from_index, generate

from handoff.core import archive
from handoff.store import archive as store_archive


def _dump(state: dict) -> str:
    return json.dumps({k: v for k, v in state.items()}, sort_keys=True, default=str)


def _seal(repo, rels: list[str]) -> list[str]:
    files = {f".handoffs/{r}": (repo / ".handoffs" / r).read_bytes() for r in rels}
    out = []
    for seg, data in archive.segments_of(files).items():
        store_archive.publish(repo, seg, data, repo / ".git" / "handoff-tmp")
        out.append(seg)
    return out


def _event_files(repo) -> list[str]:
    base = repo / ".handoffs"
    return sorted(str(p.relative_to(base)) for p in (base / "events").rglob("*.yaml"))


def test_segments_and_removed_files_fold_to_the_same_state(tmp_path):
    repo = tmp_path / "r"
    generate(repo, 250)
    before = _dump(assert_matches(repo))
    rels = _event_files(repo)
    chosen = sorted(random.Random(5).sample(rels, len(rels) // 2))
    segs = _seal(repo, chosen)  # the segment first (as compaction does): both there, read once
    assert len(segs) >= 1
    assert _dump(assert_matches(repo)) == before
    for r in chosen:
        os.unlink(repo / ".handoffs" / r)
    assert _dump(assert_matches(repo)) == before
    # the same files sealed again in a second segment (two branches, one merge): nothing counts twice
    path, _blob, body = archive.decode((repo / segs[0]).read_bytes())[0]
    seg2 = archive.encode({path: body})
    month = segs[0].split("/")[2]
    store_archive.publish(repo, archive.segment_path(seg2, month), seg2, repo / ".git" / "handoff-tmp")
    assert _dump(assert_matches(repo)) == before
    # removing a segment (never done by handoff) drops its events, and the index follows
    for seg in segs:
        os.unlink(repo / seg)
    after = assert_matches(repo)
    assert after["event_count"] < json.loads(before)["event_count"]


def test_a_tampered_entry_is_skipped_and_the_rest_read(tmp_path):
    repo = tmp_path / "r"
    generate(repo, 120)
    rels = _event_files(repo)[:10]
    segs = _seal(repo, rels)
    for r in rels:
        os.unlink(repo / ".handoffs" / r)
    full = from_index(repo)["event_count"]
    seg = repo / segs[0]
    data = seg.read_bytes()
    entries = archive.decode(data)
    path, _blob, body = entries[0]
    bad = data.replace(body, body[:-3] + (b"X" if body[-3:-2] != b"X" else b"Y") + body[-2:], 1)
    assert bad != data and len(bad) == len(data)
    os.chmod(seg, 0o644)
    seg.write_bytes(bad)  # same name, other bytes: the name no longer matches either
    st = assert_matches(repo)
    assert st["event_count"] == full - 1


def test_new_writes_after_sealing_extend(tmp_path, monkeypatch):
    repo = tmp_path / "r"
    generate(repo, 150)
    rels = _event_files(repo)[:40]
    _seal(repo, rels)
    for r in rels:
        os.unlink(repo / ".handoffs" / r)
    assert_matches(repo)
    generate(repo, 60, seed=9)
    assert_matches(repo)
