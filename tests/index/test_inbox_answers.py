"""``for_inbox`` with acknowledged messages left out reads only the session's own messages that answer a
message it keeps (table ``answers``): the inbox must still be exactly the full view's."""
from __future__ import annotations

import json

from test_index import reference

from handoff import Handoff, index
from handoff.core import queries
from handoff.index import refresh

NOW = 1_900_000_000_000


def test_own_answers_are_found_through_the_answers_table(repo):
    hf = Handoff(repo.path)
    a = hf.open_session("alpha", ["general"], session_id="sess_a")
    b = hf.open_session("beta", ["general"], session_id="sess_b")
    asked = [b.send("general", text=f"q{i}", thread="thread_talk") for i in range(6)]
    a.send("general", text="plain", thread="thread_talk")  # answers nothing
    a.send("general", text="r0", thread="thread_talk", reply_to=asked[0]["id"])
    a.send("general", text="r1", thread="thread_talk", causation_id=asked[1]["id"])
    wid = b.request(a.peer_id, "general", "do it")["handoff_id"]
    a.accept(wid)  # a receipt naming the request (for_id), then a trace
    ref = reference(repo.path)
    ws = hf.ws
    state = ws.state()
    s = ref["sessions"]["sess_a"]
    full = queries.inbox(ref, s, set(), NOW, include_all=True)
    answered = {e["id"] for e in full if e["answered"]}
    assert {asked[0]["id"], asked[1]["id"]} <= answered
    for acked in (set(), {asked[2]["id"]}, {asked[0]["id"], asked[3]["id"]}, {e["id"] for e in full}):
        want = queries.inbox(ref, s, acked, NOW)
        narrowed = index.for_inbox(state, state["sessions"]["sess_a"], skip=acked)
        assert json.dumps(queries.inbox(narrowed, s, acked, NOW)) == json.dumps(want)
        sent = [m["body"].get("text") for m in narrowed["messages"] if m["from"] == s["peer_id"]]
        assert "plain" not in sent  # an own message that answers nothing is not read
    db = refresh.open_index(ws).connect()
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= 3
    # the same after a full fold (the answers table is rebuilt with the messages)
    index.drop(ws)
    ws2 = Handoff(repo.path).ws
    state = ws2.state()
    acked = {asked[3]["id"]}
    assert json.dumps(queries.inbox(index.for_inbox(state, state["sessions"]["sess_a"], skip=acked), s, acked, NOW)) \
        == json.dumps(queries.inbox(ref, s, acked, NOW))
