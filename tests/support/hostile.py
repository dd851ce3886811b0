"""A generated corpus of hostile event files, for the schema tests.

``conversation`` fills a repo, through the real CLI, with one event of every
kind the tool writes (sessions, thread and direct messages, a handoff that is
accepted, worked on, questioned, answered and completed, a lease, presence).
``templates`` reads those files back as dicts; ``variants`` turns each into
hostile copies: every field (top level and body) replaced by a value of every
wrong type, out-of-range numbers, ids with newlines, oversized strings.  Each
variant gets a fresh id unless the id itself is what is mutated, so a
variant is one file with one diagnostic to find.
"""
from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import yaml

HOSTILE_VALUES = {
    "list": [],
    "nested_list": [{"a": []}],
    "mapping": {"a": 1},
    "int": 12345,
    "negative": -1,
    "float": 1.5,
    "bool": True,
    "null": None,
    "empty": "",
    "long": "x" * 5000,
    "huge_number": "99999999999999999",
    "huge_int": 99999999999999999999999,
    "newline": "work_x\n",
    "traversal": "../../etc/passwd",
    "bad_time": "2026-13-45T99:99:99Z",
}

# body keys the tool reads somewhere (views, lifecycle, audit, brief, leases), mutated even where the template
# lacks them
BODY_KEYS = ("text", "title", "message", "detail", "status", "state", "reason_code", "for_id", "intent", "task",
             "description", "context", "result", "checkpoint", "deadline", "target_kind", "capability", "agent",
             "name", "channels", "workspace", "lease_until", "lease_seconds", "question")


def conversation(repo) -> dict:
    """Every kind of event, written by the real CLI; returns the facts a test compares against."""
    repo.session("alice", "general", sid="sess_alice")
    repo.session("bob", "general", sid="sess_bob")
    repo.session("carol", "general", sid="sess_carol")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--text", "hello everyone")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--surface", "direct", "--to",
            "bob.sess_bob", "--text", "just between us")
    repo.ok("send", "--session", "sess_alice", "--channel", "general", "--kind", "capability", "--body",
            '{"capability": {"id": "cap_review", "summary": "reviews code", "outcome": "a verdict"}}')
    repo.ok("send", "--session", "sess_bob", "--channel", "general", "--kind", "greet", "--body", "{}")
    repo.ok("send", "--session", "sess_bob", "--channel", "general", "--kind", "whois", "--body", "{}")
    repo.j("request", "--session", "sess_alice", "--to", "bob", "--channel", "general", "--work", "work_review",
           "-d", "please review the migration", "--context", '{"files_changed": ["db.sql"]}',
           "--deadline", "2h")
    repo.ok("accept", "work_review", "--session", "sess_bob")
    repo.ok("claim", "work_review", "--session", "sess_bob", "--lease", "10m")
    repo.ok("heartbeat", "work_review", "--session", "sess_bob")
    repo.ok("progress", "work_review", "--session", "sess_bob", "-m", "half way", "--checkpoint", '{"step": 2}')
    repo.ok("need-input", "work_review", "--session", "sess_bob", "-m", "which schema?")
    repo.ok("reply", "work_review", "--session", "sess_alice", "-m", "the new one")
    repo.ok("release", "work_review", "--session", "sess_bob")
    repo.ok("complete", "work_review", "--session", "sess_bob", "--result", '{"verdict": "ok"}')
    repo.j("request", "--session", "sess_alice", "--to", "carol", "--channel", "general", "--work", "work_open",
           "-d", "still open")
    repo.ok("session", "close", "sess_carol")
    return {"status": repo.j("status"), "inbox_bob": repo.j("inbox", "--session", "sess_bob", "--all"),
            "inbox_alice": repo.j("inbox", "--session", "sess_alice", "--all"),
            "work": repo.j("work", "status", "--work", "work_review")}


def templates(repo) -> list[dict]:
    """The conversation's events as dicts, one per distinct (kind, body keys, surface)."""
    seen, out = set(), []
    for p in sorted((repo.path / ".handoffs" / "events").rglob("*.yaml")):
        ev = yaml.safe_load(p.read_bytes())
        key = (ev["kind"], ev.get("surface"), tuple(sorted(ev.get("body") or {})))
        if key not in seen:
            seen.add(key)
            out.append(ev)
    return out


_counter = itertools.count(1)
# Seeded, so a failing corpus is the same corpus on the next run (HANDOFF_CORPUS_SEED explores others).
_rng = random.Random(int(os.environ.get("HANDOFF_CORPUS_SEED", "20261207")))


def fresh_id(ev: dict) -> str:
    """The same prefix and millisecond as ``ev``'s id, a new random part (so a new file next to it)."""
    from handoff.core import ids
    prefix, ulid = ev["id"].split("_", 1)
    return f"{prefix}_{ulid[:10]}{ids.encode_base32(next(_counter) * 7919 + _rng.getrandbits(32), 16)}"


def variants(template: dict) -> list[tuple[str, dict]]:
    """(label, hostile copy) for every field of ``template`` and every hostile value."""
    out = []
    top = sorted(set(template) | {"to", "work_id", "deadline_at", "expires_at", "ext", "after", "reply_to"})
    body_keys = sorted(set(template.get("body") or {}) | set(BODY_KEYS))
    for name, value in HOSTILE_VALUES.items():
        for key in top:
            ev = dict(template, **{key: value})
            if key != "id":
                ev["id"] = fresh_id(template)
            out.append((f"{template['kind']}.{key}={name}", ev))
        for key in body_keys:
            ev = dict(template, body=dict(template.get("body") or {}, **{key: value}), id=fresh_id(template))
            out.append((f"{template['kind']}.body.{key}={name}", ev))
        for key in ("capability", "context"):  # one level down, where the tool reads nested keys
            inner = {"id": value, "summary": value, "outcome": value, "files_changed": value}
            ev = dict(template, body=dict(template.get("body") or {}, **{key: inner}), id=fresh_id(template))
            out.append((f"{template['kind']}.body.{key}.*={name}", ev))
    return out


def path_for(template: dict, ev: dict) -> str:
    """Where a variant is written (relative to the repo): the template's name with the variant's id (a mutated
    kind or sender then disagrees with the name; a mutated id gets a name of its own that parses as none)."""
    from handoff.core import model
    eid = ev.get("id")
    good = isinstance(eid, str) and model.parse_filename(f"{eid}.say.x.yaml") is not None
    rel = model.event_path(dict(template, id=eid if good else template["id"]))
    if not good:
        rel = rel.replace(".yaml", f".bad{next(_counter)}.yaml")
    return f".handoffs/{rel}"


def dump(ev: dict) -> bytes:
    return yaml.safe_dump(ev, sort_keys=True, allow_unicode=True, width=1 << 20).encode()


def write(root: Path, rel: str, data: bytes) -> str:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:
        fh.write(data)
    return rel


# every command a reader or a writer runs, each against the same repo (none may raise)
COMMANDS = [
    ["status"], ["channels"], ["peers", "general"], ["session", "list"], ["session", "status", "sess_bob"],
    ["session", "history", "sess_bob"], ["session", "events", "sess_bob"], ["inbox", "--session", "sess_bob", "--all"],
    ["inbox", "--session", "sess_alice"], ["threads", "list", "--channel", "general"],
    ["directs", "list", "--channel", "general"], ["work", "list"], ["work", "status", "--work", "work_review"],
    ["work", "lookup", "--work", "work_review"], ["status", "work_review"], ["list"], ["metrics"], ["log"],
    ["log", "--work", "work_review"], ["brief", "--session", "sess_bob"], ["report", "--markdown"],
    ["doctor"], ["sweep", "--session", "sess_alice"], ["wait", "work_review", "--timeout", "0"],
    ["send", "--session", "sess_alice", "--channel", "general", "--text", "still working"],
]


def run_everything(repo, outputs=(("-o", "json"), ())) -> dict[str, int]:
    """Every command in every output mode; returns each one's exit code (an exception fails the test)."""
    codes = {}
    for args in COMMANDS:
        for out in outputs:
            r = repo.h(*args, *out)
            assert "Traceback" not in r.err, f"{args}: {r.err}"
            assert r.code in (0, 1, 5), f"{args} -> {r.code}: {r.out[-500:]} {r.err[-500:]}"
            codes[" ".join(args + list(out))] = r.code
    return codes


def assert_index_agrees(path) -> None:
    """The index's saved fold equals ``reducer.reduce`` of the same records (work tree and remote refs), in any
    order of the files: sessions, work units and diagnostics."""
    import random

    from handoff.app.workspace import Workspace
    from handoff.core import reducer
    ws = Workspace(str(path))
    records = list(ws.records())
    cached = Workspace(str(path)).state(refresh=True).materialize()
    for seed in range(3):
        random.Random(seed).shuffle(records)
        st = reducer.reduce(records)
        assert cached["sessions"] == st["sessions"]
        assert {w: u["state"] for w, u in cached["work"].items()} == {w: u["state"] for w, u in st["work"].items()}
        assert sorted((d["path"], d["reason_code"]) for d in cached["diagnostics"]
                      if d["reason_code"] != "future_timestamp") == \
            sorted((d["path"], d["reason_code"]) for d in st["diagnostics"])
