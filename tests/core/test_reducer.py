"""The reducer is a pure function of the set of files: any order, same state."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core import reducer
from handoff.store import files as store


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Records written by the real CLI: sessions, thread and direct messages, a full work lifecycle, a refusal."""
    import os

    from tests.conftest import make_repo
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    (home / ".gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n")
    try:
        repo = make_repo(tmp_path_factory.mktemp("corpus") / "r")
        a = repo.session("alpha", "dev", "sess_a")
        b = repo.session("beta", "dev", "sess_b")
        c = repo.session("gamma", "dev", "sess_c")
        repo.ok("send", "-s", "sess_a", "-c", "dev", "-t", "thread_general", "-m", "hello all")
        w = repo.j("request", "-s", "sess_a", "--to", "beta", "-c", "dev", "-d", "do the thing")["handoff_id"]
        repo.ok("accept", w, "-s", "sess_b")
        repo.ok("progress", w, "-s", "sess_b", "--checkpoint", '{"step": 1}')
        repo.ok("send", "-s", "sess_b", "-c", "dev", "--surface", "direct", "--to", c["peer_id"], "-m", "psst")
        repo.ok("complete", w, "-s", "sess_b", "--result", '{"ok": true}')
        w2 = repo.j("request", "-s", "sess_c", "--to", a["peer_id"], "-c", "dev", "-d", "second")["handoff_id"]
        repo.ok("reject", w2, "-s", "sess_a", "--reason", "busy")
        assert b
        root = repo.path / ".handoffs"
        recs = [reducer.decode(rel, store.read_event_file(root, rel, st_)) for rel, st_, _ in
                store.list_event_files(root)]
    finally:
        if old is not None:
            os.environ["HOME"] = old
    return recs


def canon(state) -> str:
    return json.dumps(state, sort_keys=True)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_shuffled_files_reduce_to_identical_state(corpus, rnd):
    expected = canon(reducer.reduce(corpus))
    shuffled = list(corpus)
    rnd.shuffle(shuffled)
    assert canon(reducer.reduce(shuffled)) == expected


def test_duplicate_identical_files_are_one_event(corpus):
    assert canon(reducer.reduce(corpus + corpus[:3])) == canon(reducer.reduce(corpus))


def test_corpus_state_is_what_the_flow_did(corpus):
    state = reducer.reduce(corpus)
    states = sorted(w["state"] for w in state["work"].values())
    assert states == ["completed", "failed"]
    assert state["diagnostics"] == []
    assert len(state["directs"]) == 1


def test_a_broken_file_never_stops_the_rest(corpus):
    bad = {"path": "events/2026-01/01/x.yaml", "error": {"reason_code": "malformed", "message": "boom"}}
    state = reducer.reduce(corpus + [bad])
    assert len(state["work"]) == 2
    assert state["diagnostics"][0]["path"] == "events/2026-01/01/x.yaml"
