"""Build a realistic repo of N events with the tool's own writer.

Every event goes through ``Workspace.write``: the same ``*_ops`` checks
(lifecycle, containers, identities), clock stamping, canonical dump and
atomic publish as the CLI.  Three things make it fast enough for 100,000
events, none of which changes a byte of what is written:

* the writer's state comes from an in-memory fold kept up to date after each
  write (``reducer.fold``, the reducer's own code) instead of re-reading the
  index before every write;
* ``fsync`` is a no-op in this process, and the writer's private clock file
  (``.git/handoff/hlc``) is not rewritten after every event: the in-memory
  state carries the clock (durability is not what is measured; on ext4 each
  rewrite of that file costs a data flush);
* files are written with ``commit=False`` and committed at the end with one
  ``git add`` + ``git commit`` (per-event commits would only add history,
  which no read path looks at).

Timestamps are spread over months with ``HANDOFF_NOW`` (the clock honours
it), so events land in realistic day buckets.  Agents come and go: sessions
open, talk in threads and direct rooms, hand work to each other, move it
through its lifecycle, and close.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from handoff.app.workspace import Workspace  # noqa: E402
from handoff.core import (  # noqa: E402
    message_ops,
    model,
    reducer,
    session_ops,
    work_ops,
)
from handoff.errors import HandoffError  # noqa: E402

AGENTS = ["reviewer", "builder", "tester", "planner", "docs", "release", "security", "infra", "frontend",
          "backend"]
CHANNELS = ["backend", "frontend", "release", "infra", "docs", "qa", "security", "general"]
WORDS = ("the migration tests fail on staging because the auth token expired please check logs and retry "
         "after rebasing onto main the API schema changed so update the client and the fixtures then run "
         "the smoke suite again before the release cut tomorrow morning").split()


class _Messages(list):
    """The generator's message list, with the lookups the ``*_ops`` modules ask the index for."""

    def __init__(self):
        super().__init__()
        self._ids: set = set()
        self._works: set = set()
        self._keys: dict = {}
        self._seen = 0

    def _catch_up(self):
        for m in self[self._seen:]:
            self._ids.add(m["id"])
            if m.get("work_id"):
                self._works.add(m["work_id"])
            key = (m.get("ext") or {}).get("idempotency_key")
            if key:
                self._keys.setdefault(key, []).append(m)
        self._seen = len(self)

    def has_id(self, mid):
        self._catch_up()
        return mid in self._ids

    def uses_work(self, wid):
        self._catch_up()
        return wid in self._works

    def with_key(self, key):
        return [m for m in self if m["id"] == key or (m.get("ext") or {}).get("idempotency_key") == key]


class GenWorkspace(Workspace):
    """A Workspace whose state is folded in memory as it writes (see the module docstring)."""

    def __init__(self, repo):
        super().__init__(repo)
        self._acc = reducer.new_fold()
        self._acc["messages"] = _Messages()
        self._max_hlc = None
        self._count = 0

    def state(self, refresh: bool = False) -> dict:
        acc = self._acc
        return {"reducer_version": reducer.REDUCER_VERSION, "sessions": acc["sessions"], "messages": acc["messages"],
                "threads": acc["threads"], "directs": acc["directs"], "work": acc["work"], "leases": acc["leases"],
                "diagnostics": acc["diagnostics"], "counters": acc["counters"], "max_hlc": self._max_hlc,
                "event_count": self._count}

    def _note_written(self, written) -> None:
        events = [ev for _rel, _data, ev in written]
        reducer.fold(self._acc, events, {ev["id"]: rel for rel, _data, ev in written})
        self._count += len(events)
        self._max_hlc = max([self._max_hlc or ""] + [ev["hlc"] for ev in events])


def _text(rng: random.Random, lo: int = 6, hi: int = 40) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    if rng.random() < 0.15:
        cut = rng.randint(1, len(words) - 1)
        return " ".join(words[:cut]) + "\n\n" + " ".join(words[cut:])
    return " ".join(words)


class Generator:
    def __init__(self, repo: Path, n: int, *, seed: int = 7, start: str = "2026-01-05T08:00:00Z", days: int = 150,
                 tag: str = ""):
        self.repo = Path(repo)
        self.n = n
        self.rng = random.Random(seed)
        self.ws = GenWorkspace(self.repo)
        self.start_ms = model.parse_ts(start)
        self.span_ms = days * 86_400_000
        self.alive: list[dict] = []  # sessions: {"id", "peer", "agent", "channels", "until"}
        self.threads: dict[str, list[str]] = {c: [] for c in CHANNELS}
        self.open_work: list[str] = []
        self.written = 0
        self.skipped = 0
        self.seq = 0
        self.tag = tag  # keeps ids of a second run on the same repo distinct from the first run's

    # -------------------------------------------------------------- helpers
    def _now(self, i: int) -> None:
        ms = self.start_ms + int(self.span_ms * i / max(1, self.n)) + self.rng.randint(0, 900)
        os.environ["HANDOFF_NOW"] = model.format_ts(ms)

    def _write(self, build) -> list[dict]:
        try:
            result = self.ws.write(build, commit=False)
        except HandoffError:
            self.skipped += 1
            return []
        self.written += len(result.events)
        return result.events

    def _state(self):
        return self.ws.state()

    def _session(self, sid: str) -> dict:
        return self._state()["sessions"][sid]

    # -------------------------------------------------------------- operations
    def open_session(self, i: int) -> None:
        rng = self.rng
        agent = rng.choice(AGENTS)
        self.seq += 1
        sid = f"sess_{agent[:4]}{self.tag}{self.seq:06d}"
        chans = sorted(set(rng.sample(CHANNELS, rng.randint(1, 3))))
        evs = self._write(lambda st: session_ops.session_open(st, agent=agent, channels=chans, name=None, session_id=sid,
                                                      workspace=None))
        if evs:
            life = rng.randint(150, 900)  # an agent session lasts a few hundred events, whatever the history
            self.alive.append({"id": sid, "peer": evs[0]["from"], "agent": agent, "channels": chans,
                               "until": i + life})

    def close_session(self, s: dict) -> None:
        self.alive.remove(s)
        self._write(lambda st: session_ops.session_close(st, self._session(s["id"])))

    def _peer_in(self, channel: str, not_peer: str) -> dict | None:
        cands = [s for s in self.alive if channel in s["channels"] and s["peer"] != not_peer]
        return self.rng.choice(cands) if cands else None

    def _thread(self, channel: str) -> str:
        pool = self.threads[channel]
        if not pool or self.rng.random() < 0.08:
            self.seq += 1
            pool.append(f"thread_{channel}-{self.tag}{self.seq:06d}")
            if len(pool) > 30:
                pool.pop(0)
        return self.rng.choice(pool[-12:])

    def say(self, s: dict, addressed: bool, direct: bool) -> None:
        rng = self.rng
        channel = rng.choice(s["channels"])
        other = self._peer_in(channel, s["peer"]) if (addressed or direct) else None
        if (addressed or direct) and other is None:
            addressed = direct = False
        body = {"text": _text(rng)}
        sess = self._session(s["id"])
        if direct:
            self._write(lambda st: message_ops.send(st, sess, workspace_id=self.ws.workspace_id, now_ms=0, channel=channel,
                                            kind="say", body=body, surface="direct", to=other["peer"]))
        else:
            thread = self._thread(channel)
            self._write(lambda st: message_ops.send(st, sess, workspace_id=self.ws.workspace_id, now_ms=0, channel=channel,
                                            kind="say", body=body, surface="thread", thread=thread,
                                            to=other["peer"] if other else None))

    def request(self, s: dict) -> None:
        rng = self.rng
        channel = rng.choice(s["channels"])
        other = self._peer_in(channel, s["peer"])
        if other is None:
            return
        to = other["peer"] if rng.random() < 0.6 else other["agent"]
        if to == s["agent"]:
            to = other["peer"]
        ctx = {"files_changed": [f"src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.py" for _ in range(rng.randint(1, 4))],
               "decisions": [_text(rng, 3, 8)], "next_steps": [_text(rng, 3, 8) for _ in range(rng.randint(1, 3))]}
        sess = self._session(s["id"])
        self.seq += 1
        wid = f"work_{self.tag}{self.seq:07d}"
        direct = rng.random() < 0.25 and "." in to
        evs = self._write(lambda st: work_ops.request(st, sess, workspace_id=self.ws.workspace_id, now_ms=0, to=to,
                                                 channel=channel, description=_text(rng, 5, 20), context=ctx,
                                                 work=wid, deadline=None, thread=None, direct=direct,
                                                 given_id=None))
        if evs:
            self.open_work.append(wid)

    def move(self) -> None:
        rng = self.rng
        if not self.open_work:
            return
        wid = rng.choice(self.open_work[-200:])
        w = self._state()["work"].get(wid)
        if w is None or w["state"] in model.TERMINAL_STATES:
            if wid in self.open_work:
                self.open_work.remove(wid)
            return
        by_peer = {s["peer"]: s for s in self.alive}
        initiator = by_peer.get(w["opened_by_peer_id"])
        target = by_peer.get(w["target_peer_id"])
        if target is None and w.get("target_agent"):
            cands = [s for s in self.alive if s["agent"] == w["target_agent"]]
            target = rng.choice(cands) if cands else None
        r = rng.random()
        if w["state"] == "needs_input":
            actor, build = initiator, lambda st, sess: work_ops.reply(st, sess, wid, text=_text(rng))
        elif w["state"] == "submitted":
            if r < 0.85:
                actor, build = target, lambda st, sess: work_ops.accept(st, sess, wid)
            elif r < 0.95:
                actor, build = target, lambda st, sess: work_ops.reject(st, sess, wid, reason=_text(rng, 3, 10))
            else:
                actor, build = initiator, lambda st, sess: work_ops.cancel(st, sess, wid)
        else:
            if r < 0.45:
                cp = {"done": rng.randint(1, 9), "of": 10}
                actor, build = target, lambda st, sess: work_ops.trace(st, sess, wid, "working", message=_text(rng, 3, 12),
                                                                  checkpoint=cp)
            elif r < 0.6:
                actor, build = target, lambda st, sess: work_ops.trace(st, sess, wid, "needs_input",
                                                                  message=_text(rng, 4, 12))
            elif r < 0.9:
                actor, build = target, lambda st, sess: work_ops.trace(st, sess, wid, "completed", message="done",
                                                                  result={"pr": f"#{rng.randint(1, 9999)}"})
            elif r < 0.97:
                actor, build = target, lambda st, sess: work_ops.trace(st, sess, wid, "failed", message=_text(rng, 3, 9))
            else:
                actor, build = initiator, lambda st, sess: work_ops.cancel(st, sess, wid)
        if actor is None:
            return
        self._write(lambda st: build(st, st["sessions"][actor["id"]]))

    # -------------------------------------------------------------- driver
    def run(self, progress=None, every: int = 1000) -> dict:
        rng = self.rng
        t0 = time.monotonic()
        i = 0
        while self.written < self.n:
            self._now(self.written)
            for s in [s for s in self.alive if s["until"] <= self.written]:
                self.close_session(s)
            if len(self.alive) < 12 or rng.random() < 0.004:
                self.open_session(self.written)
                continue
            s = rng.choice(self.alive)
            r = rng.random()
            if r < 0.34:
                self.say(s, addressed=False, direct=False)
            elif r < 0.46:
                self.say(s, addressed=True, direct=False)
            elif r < 0.56:
                self.say(s, addressed=False, direct=True)
            elif r < 0.66:
                self.request(s)
            else:
                self.move()
            i += 1
            if progress and i % every == 0:
                progress(self.written, self.n)
        os.environ.pop("HANDOFF_NOW", None)
        return {"events": self.written, "skipped": self.skipped, "seconds": round(time.monotonic() - t0, 2),
                "active_sessions": [s["id"] for s in self.alive]}


def make_repo(path: Path, workspace: str = "bench") -> None:
    path.mkdir(parents=True, exist_ok=True)
    env = git_env()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    (path / "README.md").write_text("bench repo\n")
    subprocess.run(["git", "add", "README.md"], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "initial"], cwd=path, check=True, env=env)
    from handoff.app.init import init_workspace
    init_workspace(str(path), workspace, commit=True)


def git_env() -> dict:
    env = dict(os.environ)
    env.update({"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
    return env


def commit_all(path: Path, message: str) -> None:
    env = git_env()
    subprocess.run(["git", "add", "-A", ".handoffs"], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", message], cwd=path, check=True, env=env)


def generate(path: Path, n: int, *, seed: int = 7, start: str = "2026-01-05T08:00:00Z", days: int = 150,
             commit: bool = True, progress=None, tag: str = "") -> dict:
    """Create (if needed) and fill a repo with ``n`` events; returns what was made and how long it took."""
    path = Path(path)
    if not (path / ".handoffs" / "config.yaml").exists():
        make_repo(path)
    from handoff.store import files as store
    real_fsync, real_local = os.fsync, store.atomic_write_local
    os.fsync = lambda fd: None  # durability is not what this measures; the bytes written are the same
    store.atomic_write_local = lambda p, data: None  # only the writer's clock file: the in-memory state has it
    try:
        info = Generator(path, n, seed=seed, start=start, days=days, tag=tag).run(progress)
    finally:
        os.fsync, store.atomic_write_local = real_fsync, real_local
    if commit:
        t = time.monotonic()
        commit_all(path, f"bench: {n} events")
        info["commit_seconds"] = round(time.monotonic() - t, 2)
    return info


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description="generate a repo of N handoff events")
    p.add_argument("path")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    print(json.dumps(generate(Path(a.path), a.events, seed=a.seed)))
