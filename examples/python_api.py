"""The Python API in one page: two agents hand work over, a third process could watch.

    python examples/python_api.py [REPO]      # default: a fresh throwaway repository

Every call returns the same JSON-ready dict the CLI prints with -o json and raises
HandoffError (reason_code, message, hint) for the same refusals.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import threading

from handoff import Handoff, HandoffError


def main(repo: str) -> dict:
    hf = Handoff.init(repo, "api-demo")                       # harmless if .handoffs/ exists
    coord = hf.open_session("coordinator", ["release"], session_id="sess_api_coord")
    review = hf.open_session("reviewer", ["release"], session_id="sess_api_review")

    # a handoff to any session of the agent "reviewer", with a context bundle
    h = coord.request("reviewer", "release", "Check the release notes",
                      context={"files_changed": ["CHANGELOG.md"], "next_steps": ["compare with git log"]})
    wid = h["handoff_id"]

    # the reviewer's side: what waits, and the short brief a fresh session would read first
    assert [e["work_id"] for e in review.inbox()["entries"]] == [wid]
    print(review.brief()["counts"])

    # the coordinator blocks in wait() while the reviewer works (a thread stands in for another process)
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(hf.wait(wid, timeout=60)))
    waiter.start()
    review.accept(wid, "on it")
    review.progress(wid, "half done", checkpoint={"checked": ["1.0", "1.1"]})
    review.complete(wid, "all good", result={"missing_entries": 0})
    waiter.join()
    print(outcome["wait_result"], outcome["state"])            # completed completed

    # refusals are exceptions with a reason code
    try:
        review.fail(wid, "too late")
    except HandoffError as err:
        print("refused:", err.reason_code)                     # work_closed

    # watch(): a generator of new inbox entries, each once (per consumer, across restarts);
    # it stops after `timeout` seconds without news
    for entry in coord.watch(consumer="example", timeout=0.5):
        print("coordinator sees", entry["kind"], (entry.get("body") or {}).get("state"))
    assert list(coord.watch(consumer="example", timeout=0)) == []   # nothing is delivered twice
    return hf.work(wid)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        target = sys.argv[1]
    else:
        target = tempfile.mkdtemp(prefix="handoff-api-")
        subprocess.run(["git", "init", "-q", target], check=True)
        subprocess.run(["git", "-C", target, "commit", "-q", "--allow-empty", "-m", "initial"], check=True)
    final = main(target)
    print(final["work_id"], final["state"], final["result"])
