"""Seed 001 (Hivemind handoffs) end to end: request with context, list pending, reject, accept, status, metrics."""
from __future__ import annotations

import json

CONTEXT = {"files_changed": ["src/auth.ts", "src/middleware.ts"], "decisions": ["Switched from JWT to session tokens"],
           "next_steps": ["Wire the session store into the API layer"], "ticket": "AUTH-42"}


def at(hhmmss: str) -> dict:
    return {"HANDOFF_NOW": f"2026-05-02T{hhmmss}Z"}


def test_seed001_request_reject_accept_status_metrics(repo, tmp_path):
    repo.ok("session", "new", "--agent", "agent-a", "--channel", "backend", "--id", "sess_a", env=at("09:00:00"))
    repo.ok("session", "new", "--agent", "agent-b", "--channel", "backend", "--id", "sess_b", env=at("09:00:01"))
    ctx_file = tmp_path / "context.json"
    ctx_file.write_text(json.dumps(CONTEXT))

    first = repo.j("request", "-s", "sess_a", "--target-agent", "agent-b", "-c", "backend",
                   "-d", "Auth module refactored, needs API integration", "--context", f"@{ctx_file}",
                   env=at("10:00:00"))
    ho1 = first["handoff_id"]
    assert (first["status"], first["from"], first["to"], first["context"]) == \
        ("pending", "agent-a.sess_a", "agent-b", CONTEXT)
    assert first["committed"] is True

    for flag in ("--to", "--target-agent", "--to-agent"):
        pending = repo.j("list", flag, "agent-b", "--status", "pending")["handoffs"]
        assert [h["handoff_id"] for h in pending] == [ho1]
    assert repo.j("list", "--to", "agent-c", "--status", "pending")["handoffs"] == []
    assert [e["work"]["work_id"] for e in repo.j("inbox", "-s", "sess_b")["entries"]] == [ho1]

    rejected = repo.j("reject", ho1, "-s", "sess_b", "--reason", "Currently working on migrations", env=at("10:05:00"))
    assert rejected["work"]["state"] == "failed"
    st1 = repo.j("status", ho1)
    assert (st1["status"], st1["reason"], st1["responded_at"]) == \
        ("rejected", "Currently working on migrations", "2026-05-02T10:05:00.000Z")
    assert repo.j("list", "--status", "pending")["handoffs"] == []
    # the requester sees the answer; the rejected handoff is gone from the target's inbox
    assert repo.j("inbox", "-s", "sess_b")["entries"] == []
    answer = repo.j("inbox", "-s", "sess_a")["entries"]
    assert [(e["kind"], e["body"]["status"]) for e in answer] == [("receipt", "rejected")]

    second = repo.j("request", "-s", "sess_a", "--to-agent", "agent-b", "-c", "backend",
                    "-d", "Auth module refactored, needs API integration", "--context", json.dumps(CONTEXT),
                    env=at("11:00:00"))
    ho2 = second["handoff_id"]
    assert ho2 != ho1
    repo.ok("accept", ho2, "-s", "sess_b", env=at("11:02:30"))

    status = repo.j("status", ho2)
    expected = {"handoff_id": ho2, "channel": "backend", "from": "agent-a.sess_a", "to": "agent-b",
                "description": "Auth module refactored, needs API integration", "context": CONTEXT,
                "status": "accepted", "requested_at": "2026-05-02T11:00:00.000Z",
                "responded_at": "2026-05-02T11:02:30.000Z"}
    assert {k: status[k] for k in expected} == expected
    assert status["accepted_by"] == "agent-b.sess_b" and status["state"] == "working"
    human = repo.ok("status", ho2).out
    assert "accepted · working" in human and "agent-a.sess_a -> agent-b" in human

    assert [h["handoff_id"] for h in repo.j("list", "--status", "accepted")["handoffs"]] == [ho2]
    assert [h["handoff_id"] for h in repo.j("list", "--status", "rejected")["handoffs"]] == [ho1]
    assert [h["handoff_id"] for h in repo.j("list", "--to", "agent-b")["handoffs"]] == [ho1, ho2]

    m = repo.j("metrics")
    assert len(m["pairs"]) == 1
    pair = m["pairs"][0]
    assert {k: pair[k] for k in ("from_agent", "to_agent", "volume", "accepted", "rejected", "pending",
                                 "success_rate", "mean_acceptance_s", "median_acceptance_s")} == \
        {"from_agent": "agent-a", "to_agent": "agent-b", "volume": 2, "accepted": 1, "rejected": 1, "pending": 0,
         "success_rate": 0.5, "mean_acceptance_s": 150.0, "median_acceptance_s": 150.0}
    assert pair["mean_time_to_terminal_s"] == 300.0 and pair["completion_rate"] is None

    names = [e["event"] for e in repo.ok("log", "-o", "jsonl").lines if e["event"].startswith("agent.handoff.")]
    assert names == ["agent.handoff.requested", "agent.handoff.rejected", "agent.handoff.requested",
                     "agent.handoff.accepted"]

    repo.ok("complete", ho2, "-s", "sess_b", "--result", '{"pr": "#42"}', env=at("12:00:00"))
    pair = repo.j("metrics")["pairs"][0]
    assert pair["completion_rate"] == 1.0 and pair["completed"] == 1
    assert pair["mean_time_to_terminal_s"] == (300.0 + 3600.0) / 2
    assert repo.j("status", ho2)["status"] == "accepted"  # the handoff's answer; the work itself is completed
