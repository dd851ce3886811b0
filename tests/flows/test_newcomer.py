"""A newcomer's first hour (issue 16): one handoff from request to ack, read the way a person reads it.

Each step runs the real CLI in a real git repo and checks the human text a newcomer sees next to
the JSON a script reads: one word pair for a handoff's state, one inbox entry per accept, counts
that say what they count, a question that says it is one, and news that needs no answer.
"""
from __future__ import annotations


def _two_sessions(repo):
    repo.session("lead", "release", "sess_lead")
    repo.session("worker", "release", "sess_work")


def test_one_word_pair_for_a_handoffs_state_everywhere(repo):
    _two_sessions(repo)
    out = repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Fix the login bug",
                  "--work", "work_login").out
    assert "(pending · submitted)" in out
    assert "[work_login: pending · submitted]" in repo.ok("inbox", "-s", "sess_work").out
    assert "work_login  pending · submitted" in repo.ok("status", "work_login").out
    assert "pending · submitted" in repo.ok("list").out
    assert "work_login  accepted · working" in repo.ok("accept", "work_login", "-s", "sess_work").out
    repo.ok("need-input", "work_login", "-s", "sess_work", "-m", "Which browser?")
    for args in (["status", "work_login"], ["work", "lookup", "--work", "work_login"],
                 ["work", "status", "--work", "work_login"], ["list"], ["work", "list"],
                 ["inbox", "-s", "sess_lead"], ["brief", "-s", "sess_lead"]):
        text = repo.ok(*args).out
        assert "accepted · needs_input" in text, (args, text)
        assert "ACCEPTED" not in text and "NEEDS_INPUT" not in text and "(work:" not in text, (args, text)
    # JSON keeps its fields; work payloads and inbox entries' work gain the response as `status`
    h = repo.j("status", "work_login")
    assert (h["status"], h["state"]) == ("accepted", "needs_input")
    assert repo.j("work", "lookup", "--work", "work_login")["status"] == "accepted"
    assert repo.j("inbox", "-s", "sess_lead")["entries"][0]["work"]["status"] == "accepted"
    # a rejection, and a handoff withdrawn before anyone answered
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Port to Windows", "--work", "work_win")
    assert "work_win  rejected · failed" in repo.ok("reject", "work_win", "-s", "sess_work", "--reason", "no box").out
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Old idea", "--work", "work_old")
    repo.ok("cancel", "work_old", "-s", "sess_lead")
    assert "work_old  unanswered · canceled" in repo.ok("status", "work_old").out
    assert repo.j("status", "work_old")["status"] == "canceled"  # (Hivemind's status, as before)


def test_one_accept_is_one_inbox_entry(repo):
    _two_sessions(repo)
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Fix it", "--work", "work_x")
    repo.ok("accept", "work_x", "-s", "sess_work")
    d = repo.j("inbox", "-s", "sess_lead")
    receipt, trace = d["entries"]  # JSON keeps both events...
    assert (receipt["kind"], trace["kind"]) == ("receipt", "trace")
    assert (receipt["folded_into"], trace["folded_into"]) == (None, receipt["id"])  # ...and says they are one
    assert (d["count"], d["waiting"], d["news"]) == (2, 1, 0)
    text = repo.ok("inbox", "-s", "sess_lead").out
    assert text.startswith("inbox of lead.sess_lead: 1 waiting\n")
    assert text.count("\n- ") == 1 and f"(+ trace {trace['id']})" in text
    # a progress note after it is a second entry of its own
    repo.ok("progress", "work_x", "-s", "sess_work", "-m", "half way")
    assert repo.j("inbox", "-s", "sess_lead")["waiting"] == 2
    assert repo.ok("inbox", "-s", "sess_lead").out.count("\n- ") == 2


def test_a_question_says_it_is_one_and_how_to_answer(repo):
    _two_sessions(repo)
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Fix it", "--work", "work_q")
    repo.ok("accept", "work_q", "-s", "sess_work")
    repo.ok("need-input", "work_q", "-s", "sess_work", "-m", "Which browser?")
    entries = repo.j("inbox", "-s", "sess_lead")["entries"]
    assert [e["asks"] for e in entries] == [None, None, "Which browser?"]
    text = repo.ok("inbox", "-s", "sess_lead").out
    assert "    asks: Which browser?\n" in text
    assert '    $ handoff reply work_q --session sess_lead -m "..."' in text
    b = repo.j("brief", "-s", "sess_lead")
    assert b["open_work"][0]["asks"] == "Which browser?"
    brief = repo.ok("brief", "-s", "sess_lead").out
    assert "  asks: > Which browser?" in brief and 'handoff reply work_q --session sess_lead -m "..."' in brief
    # the worker sees no question of its own to answer
    assert "asks:" not in repo.ok("brief", "-s", "sess_work").out
    # once replied to, the question is answered and the reply waits for the worker
    repo.ok("reply", "work_q", "-s", "sess_lead", "-m", "Firefox")
    assert repo.j("inbox", "-s", "sess_lead")["entries"] == []
    assert "firefox" in repo.ok("inbox", "-s", "sess_work").out.lower()


def test_completion_is_news_until_acked_and_all_counts_what_it_lists(repo):
    _two_sessions(repo)
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Fix it", "--work", "work_n")
    repo.ok("accept", "work_n", "-s", "sess_work")
    repo.ok("need-input", "work_n", "-s", "sess_work", "-m", "Which browser?")
    repo.ok("reply", "work_n", "-s", "sess_lead", "-m", "Firefox")
    repo.ok("complete", "work_n", "-s", "sess_work", "-m", "fixed")
    assert repo.proc("wait", "work_n", "--timeout", "5").returncode == 0

    d = repo.j("inbox", "-s", "sess_lead")
    [done] = d["entries"]
    assert done["news"] is True and done["answered"] is False and (d["count"], d["waiting"], d["news"]) == (1, 0, 1)
    text = repo.ok("inbox", "-s", "sess_lead").out
    assert text.startswith("inbox of lead.sess_lead: 0 waiting · 1 news\nNews (")
    assert f"$ handoff inbox --session sess_lead --ack {done['id']}" in text
    everything = repo.j("inbox", "-s", "sess_lead", "--all")
    assert (everything["count"], everything["waiting"], everything["news"]) == (4, 0, 1)
    assert repo.ok("inbox", "-s", "sess_lead", "--all").out.startswith(
        "inbox of lead.sess_lead: 3 entries · 0 waiting · 1 news\n")  # (the accept's trace folds into its receipt)

    b = repo.j("brief", "-s", "sess_lead")
    assert b["inbox"] == [] and b["counts"]["inbox"] == 0 and b["counts"]["news"] == 1
    assert b["news"][0]["id"] == done["id"] and b["news"][0]["work_status"] == "accepted"
    brief = repo.ok("brief", "-s", "sess_lead").out
    assert "inbox 0 ·" in brief and "news 1" in brief and "Inbox (unanswered)" not in brief
    assert "News (work you asked for has ended" in brief and "[work_n: accepted · completed]" in brief

    # reading changed nothing; ack clears it
    assert repo.j("inbox", "-s", "sess_lead") == d
    repo.ok("inbox", "-s", "sess_lead", "--ack", done["id"])
    assert repo.j("inbox", "-s", "sess_lead")["entries"] == []
    assert "Nothing waits for you." in repo.ok("brief", "-s", "sess_lead").out
    assert repo.ok("inbox", "-s", "sess_lead", "--all").out.startswith(
        "inbox of lead.sess_lead: 3 entries · 0 waiting\n")
    # the worker: its answered entries are not counted as waiting either
    w = repo.ok("inbox", "-s", "sess_work", "--all").out
    assert w.startswith("inbox of worker.sess_work: 2 entries · 0 waiting\n"), w


def test_a_rejection_is_news_too(repo):
    _two_sessions(repo)
    repo.ok("request", "-s", "sess_lead", "--to", "worker", "-c", "release", "-d", "Port it", "--work", "work_r")
    repo.ok("reject", "work_r", "-s", "sess_work", "--reason", "no Windows box")
    [e] = repo.j("inbox", "-s", "sess_lead")["entries"]
    assert e["news"] is True
    text = repo.ok("inbox", "-s", "sess_lead").out
    assert "0 waiting · 1 news" in text and "[work_r: rejected · failed]" in text and "no Windows box" in text
