"""``index.for_inbox_unacked``: an inbox read from the acks appended since the last look and from the
messages past the session's ack floor must be exactly the inbox a full reduce and the whole acks file give,
whatever happens in between: acks, new messages, a late message dated below the floor, an acks file
replaced, a full fold."""
from __future__ import annotations

import json
import random

import pytest
from test_index import reference

from handoff import Handoff, index
from handoff.core import ids, model, queries
from handoff.core.yaml import codec
from handoff.store import local

NOW = 1_900_000_000_000


def _check(repo, hf: Handoff, sid: str) -> list[dict]:
    ws = hf.ws
    ref = reference(repo.path)
    s = ref["sessions"][sid]
    want = queries.inbox(ref, s, local.read_acks(ws, sid), NOW)
    state = ws.state(refresh=True)
    narrowed, acked = index.for_inbox_unacked(state, state["sessions"][sid], ws)
    got = queries.inbox(narrowed, s, acked, NOW)
    assert [e["id"] for e in got] == [e["id"] for e in want]
    assert json.dumps(got) == json.dumps(want)
    # and through the API (the same path `handoff inbox` takes)
    assert json.dumps(hf.session(sid).inbox()["entries"]) == json.dumps(want)
    return want


@pytest.mark.parametrize("seed", [5, 11, 23])
def test_inbox_past_the_ack_floor_equals_the_full_view(repo, seed):
    rng = random.Random(seed)
    hf = Handoff(repo.path)
    a = hf.open_session("alpha", ["general", "dev"], session_id="sess_a")
    b = hf.open_session("beta", ["general"], session_id="sess_b")
    c = hf.open_session("gamma", ["dev"], session_id="sess_c")
    sent = []
    for step in range(60):
        r = rng.random()
        if r < 0.45:
            who = rng.choice([b, c])
            chan = "general" if who is b else "dev"
            to = a.peer_id if rng.random() < 0.3 else None
            sent.append(who.send(chan, text=f"m{step}", thread="thread_one" if rng.random() < 0.7 else "thread_two",
                                 to=to)["id"])
        elif r < 0.55:
            a.send("general", text=f"mine {step}", thread="thread_one",
                   reply_to=rng.choice(sent) if sent and rng.random() < 0.5 else None)
        elif r < 0.85:
            waiting = [e["id"] for e in a.inbox()["entries"]]
            if waiting:
                # mostly the oldest first, as an agent that keeps up does; sometimes one out of order
                pick = waiting[:rng.randint(1, len(waiting))] if rng.random() < 0.7 else [rng.choice(waiting)]
                a.ack(*pick)
        else:
            _check(repo, hf, "sess_a")
    want = _check(repo, hf, "sess_a")
    # a late message, dated before everything acknowledged (a teammate's clock behind): a full fold
    template = codec.load(next(p for p in repo.event_files() if ".say.beta." in p.name).read_bytes())
    early_ms = ids.ulid_ms(template["id"].split("_", 1)[1]) - 1
    late = dict(template, id=model.new_event_id("say", ids.encode_base32(early_ms, 10) + "7" * 16),
                hlc=f"{early_ms:016d}-00000", ts=model.format_ts(early_ms), body={"text": "late"})
    path = repo.path / ".handoffs" / model.event_path(late)
    path.write_bytes(codec.dump(late))
    refolds = index.STATS["refold"]
    want = _check(repo, hf, "sess_a")
    assert index.STATS["refold"] == refolds + 1  # (message positions changed: the floor table went with them)
    assert late["id"] in {e["id"] for e in want}
    # the acks file replaced by a shorter one (another inode): read again from the start
    acks = hf.ws.paths.shared / "acks" / "sess_a.txt"
    lines = acks.read_text().splitlines()
    tmp = acks.with_suffix(".new")
    tmp.write_text("".join(f"{x}\n" for x in lines[: len(lines) // 2]))
    tmp.replace(acks)
    _check(repo, hf, "sess_a")
    a.ack("all")
    assert _check(repo, hf, "sess_a") == []
    b.send("general", text="after all", thread="thread_one")
    assert len(_check(repo, hf, "sess_a")) == 1
    floor, tail = hf.ws.state(refresh=True).db.execute("SELECT floor, tail FROM ackfloor WHERE sid='sess_a'").fetchone()
    assert floor and len(index.marshal.loads(tail)) < 5  # everything acked sits below the floor
    index.drop(hf.ws)
    hf2 = Handoff(repo.path)
    _check(repo, hf2, "sess_a")
    del c
    assert any(sent)
