#!/usr/bin/env python3
"""Agent B (the AXME worker): takes handoffs addressed to ``agent-b``, works through them in
batches, checkpoints after each batch, and survives being killed.

    agent_b.py [--session sess_agentb] [--step-seconds 0.5] [--exit-when-idle]

On start it first resumes its own unfinished work from the latest checkpoint (``handoff work
list --session S --state open`` shows it), then follows ``handoff watch`` for new handoffs.
Every write uses an idempotency key, so redoing a step after a crash writes nothing twice.
It only talks to the ``handoff`` command line, like any agent would.

Log lines on stdout (the test reads them): ``accepted W``, ``resume W at batch N``,
``batch N/M W``, ``completed W``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HANDOFF = shlex.split(os.environ.get("HANDOFF", "handoff"))
CHANNEL = os.environ.get("CHANNEL", "handoffs")


def handoff(*args: str) -> dict:
    proc = subprocess.run([*HANDOFF, *args, "-o", "json"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"agent-b: handoff {' '.join(args[:2])} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def log(text: str) -> None:
    print(text, flush=True)


def work_on(session: str, work: dict, step_seconds: float) -> None:
    """Process the batches of one unit, starting after the last checkpoint."""
    wid = work["work_id"]
    batches = int((work.get("context") or {}).get("batches") or 5)
    done = int((work.get("checkpoint") or {}).get("batch") or 0)
    if done:
        log(f"resume {wid} at batch {done + 1}")
    for batch in range(done + 1, batches + 1):
        time.sleep(step_seconds)  # the actual work of one batch
        handoff("progress", wid, "--session", session, "-m", f"batch {batch}/{batches} processed",
                "--checkpoint", json.dumps({"batch": batch, "of": batches}), "--idempotency-key", f"{wid}.batch-{batch}")
        log(f"batch {batch}/{batches} {wid}")
    handoff("complete", wid, "--session", session, "-m", "analysis processed",
            "--result", json.dumps({"batches": batches, "status": "processed"}), "--idempotency-key", f"{wid}.complete")
    log(f"completed {wid}")


def open_work(session: str, peer: str) -> list[dict]:
    rows = handoff("work", "list", "--session", session, "--state", "open")["work"]
    return [w for w in rows if w["target_peer_id"] == peer and w["state"] == "working"]


def details(wid: str) -> dict:
    w = handoff("work", "status", wid)
    w["context"] = handoff("status", wid).get("context")
    return w


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--session", default=os.environ.get("B_SESSION", "sess_agentb"))
    ap.add_argument("--step-seconds", type=float, default=0.5)
    ap.add_argument("--exit-when-idle", action="store_true", help="stop after finishing a unit")
    args = ap.parse_args()
    me = handoff("session", "new", "--agent", "agent-b", "--channel", CHANNEL, "--id", args.session)
    peer = me["peer_id"]
    log(f"agent-b up as {peer}")

    # 1. Crash recovery: whatever this session had accepted and not finished.
    for w in open_work(args.session, peer):
        work_on(args.session, details(w["work_id"]), args.step_seconds)
        if args.exit_when_idle:
            return 0

    # 2. New handoffs, as they land (at-least-once: a unit may come up again; accept is idempotent).
    watcher = subprocess.Popen([*HANDOFF, "watch", "--session", args.session, "-o", "jsonl",
                                "--consumer", "agent-b"], stdout=subprocess.PIPE, text=True)
    try:
        for line in watcher.stdout:
            note = json.loads(line)
            work = note.get("work") or {}
            wid = work.get("work_id")
            if note["notification"] != "message" or not wid or (note.get("body") or {}).get("intent") != "handoff":
                continue
            if work["state"] == "submitted":
                handoff("accept", wid, "--session", args.session, "--idempotency-key", f"{wid}.accept")
                log(f"accepted {wid}")
            w = details(wid)
            if w["state"] == "working" and w["target_peer_id"] == peer:
                work_on(args.session, w, args.step_seconds)
                if args.exit_when_idle:
                    return 0
    finally:
        watcher.terminate()
        watcher.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
