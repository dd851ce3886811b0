"""Message text is untrusted: terminal escapes are neutralised in human output, kept exact in JSON."""
from __future__ import annotations

import json

HOSTILE_TEXT = ("clear\x1b[2J\x1b[H title\x1b]0;pwned\x07 csi\x9b31m bell\x07 back\x08\x08 "
                "cr\rover nul-free \u202eright-to-left\u202c osc52\x1b]52;c;cm0gLXJmIH4=\x07 end")


def _has_raw_controls(text: str) -> bool:
    return any(ch in text for ch in ("\x1b", "\x07", "\x9b", "\x08", "\r"))


def test_escape_sequences_are_neutralised(repo):
    a = repo.session("alice", "general", sid="sess_alice")
    b = repo.session("bob", "general", sid="sess_bob")
    sent = repo.j("send", "--session", "sess_alice", "--channel", "general", "--thread", "thread_one",
                  "--to", b["peer_id"], "--work", "work_w1", "--text", HOSTILE_TEXT)
    assert sent["body"]["text"] == HOSTILE_TEXT  # machine output is faithful
    views = [["inbox", "--session", "sess_bob"], ["inbox", "--session", "sess_bob", "--all"],
             ["threads", "list", "--channel", "general"],
             ["threads", "messages", "--channel", "general", "--thread", "thread_one"],
             ["threads", "show", "--channel", "general", "--thread", "thread_one"],
             ["work", "lookup", "--work", "work_w1"], ["work", "list"], ["status"], ["status", "work_w1"],
             ["session", "history", "sess_bob"], ["session", "events", "sess_alice"], ["session", "status", "sess_bob"],
             ["send", "--session", "sess_bob", "--channel", "general", "--thread", "thread_one", "--to",
              a["peer_id"], "--work", "work_w1", "--kind", "trace", "--body",
              json.dumps({"state": "working", "message": HOSTILE_TEXT})]]
    import typer.main

    from handoff.faces.cli import app
    known = typer.main.get_command(app).commands
    checked = 0
    for args in views:
        if args[0] not in known:
            continue
        r = repo.h(*args)
        assert r.code == 0, (args, r.err)
        assert not _has_raw_controls(r.out + r.err), (args, r.out)
        checked += 1
        for fmt in ("json", "jsonl"):
            if args[0] == "send":
                continue
            r = repo.h(*args, "-o", fmt)
            assert r.code == 0 and not _has_raw_controls(r.out), (args, fmt)
    assert checked >= 10
    # the text survives byte for byte in machine output
    msgs = repo.j("threads", "messages", "--channel", "general", "--thread", "thread_one")["messages"]
    assert msgs[0]["body"]["text"] == HOSTILE_TEXT


def test_yaml_output_is_safe(repo):
    repo.session("alice", "general", sid="sess_alice")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--thread", "thread_one", "--text", HOSTILE_TEXT)
    r = repo.ok("threads", "messages", "--channel", "general", "--thread", "thread_one", "-o", "yaml")
    assert not _has_raw_controls(r.out)
    import yaml
    assert yaml.safe_load(r.out)["messages"][0]["body"]["text"] == HOSTILE_TEXT
