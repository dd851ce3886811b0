"""GitPython against git's plumbing, for ``handoff log``'s history walk and GitPython's import cost.

    python bench/gitpython.py [--commits 2000] [--runs 5] [--json]

Builds (under bench/out/) a repo of N commits made with ``git fast-import``, each adding one
event file under ``.handoffs/events/<month>/<day>/`` (one commit in ten also touches a file
outside ``.handoffs/``, one in fifty is a merge of a side branch), then times, alternated and
in the same process, the map "event file -> the commit that added it" built three ways:

* plumbing: ``handoff.git.commits.added_by`` (one ``git log --diff-filter=A --name-only``);
* gitpython_diff: ``repo.iter_commits(paths=...)`` and ``commit.diff(parent)`` per commit
  (GitPython runs one ``git diff-tree`` per commit);
* gitpython_trees: ``repo.iter_commits(paths=...)`` and a tree-to-tree diff in Python over
  GitPython's object API (its persistent ``cat-file --batch``), descending only into subtrees
  whose id changed.

Each is checked to give the same map.  Also measured: ``import git`` (``-X importtime``'s
cumulative figure and the wall-clock difference of ``python -c "import git"`` vs ``pass``), and
``handoff sync -o json`` with nothing to push or fetch (a clone of a bare remote): its wall clock,
and the share of its ``-X importtime`` that is GitPython.
Prints one JSON object as its last line (medians, in ms).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PREFIX = ".handoffs/events"


def build(dest: Path, n: int) -> Path:
    if (dest / ".git").exists():
        return dest
    dest.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    lines: list[str] = []
    mark = 0
    t0 = 1_780_000_000

    def commit(ref: str, i: int, files: list[tuple[str, str]], parents: list[str]) -> str:
        nonlocal mark
        mark += 1
        msg = f"handoff: event {i}"
        lines.append(f"commit {ref}\nmark :{mark}\nauthor A <a@x> {t0 + i * 60} +0000\n"
                     f"committer A <a@x> {t0 + i * 60} +0000\ndata {len(msg)}\n{msg}")
        for p in parents[:1]:
            lines.append(f"from {p}")
        for p in parents[1:]:
            lines.append(f"merge {p}")
        for path, body in files:
            lines.append(f"M 100644 inline {path}\ndata {len(body.encode())}\n{body}")
        lines.append("")
        return f":{mark}"

    head = commit("refs/heads/main", 0, [("README", "seed\n")], [])
    side = None
    for i in range(1, n + 1):
        day = f"2026-{1 + i // 400 % 12:02d}/{1 + i // 20 % 28:02d}"
        path = f"{PREFIX}/{day}/01J{i:023d}.say.agent{i % 7}.yaml"
        files = [(path, f"id: evt_{i}\nkind: say\nbody: message {i}\n")]
        if i % 10 == 0:
            files.append((f"src/file{i % 13}.txt", f"edit {i}\n"))
        if i % 50 == 25:
            side = commit("refs/heads/side", i, files, [head])
            continue
        head = commit("refs/heads/main", i, files, [head] + ([side] if side and i % 50 == 26 else []))
        if i % 50 == 26:
            side = None
    subprocess.run(["git", "fast-import", "--quiet"], cwd=dest, input="\n".join(lines).encode(), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=dest, check=True)
    return dest


def plumbing(path: Path) -> dict[str, str]:
    from handoff.git import cmd, commits
    return {p: c["sha"] for p, c in commits.added_by(cmd.discover(path)).items()}


def gitpython_diff(path: Path) -> dict[str, str]:
    import git
    out: dict[str, str] = {}
    with git.Repo(path) as repo:
        for c in repo.iter_commits("HEAD", paths=PREFIX):
            if len(c.parents) > 1:
                continue  # as git log without -m: a merge shows no diff
            diffs = c.diff(c.parents[0] if c.parents else git.NULL_TREE, paths=PREFIX, R=True)
            for d in diffs:
                if d.new_file and d.b_path:
                    out[d.b_path] = c.hexsha  # newest first: the last seen is the oldest
    return out


def _added(old, new, base: str, acc: list[str]) -> None:
    """Blob paths under ``new`` that ``old`` lacks (a Python tree diff; only changed subtrees are read)."""
    olds = {o.name: o for o in old} if old is not None else {}
    for o in new:
        prev = olds.get(o.name)
        if prev is not None and prev.binsha == o.binsha:
            continue
        if o.type == "tree":
            _added(prev if prev is not None and prev.type == "tree" else None, o, f"{base}{o.name}/", acc)
        elif o.type == "blob" and (prev is None or prev.type != "blob"):
            acc.append(base + o.name)


def gitpython_trees(path: Path) -> dict[str, str]:
    import git
    out: dict[str, str] = {}
    with git.Repo(path) as repo:
        for c in repo.iter_commits("HEAD", paths=PREFIX):
            if len(c.parents) > 1:
                continue
            try:
                new = c.tree / PREFIX
            except KeyError:
                continue
            old = None
            if c.parents:
                try:
                    old = c.parents[0].tree / PREFIX
                except KeyError:
                    old = None
            acc: list[str] = []
            _added(old, new, PREFIX + "/", acc)
            for p in acc:
                out[p] = c.hexsha
    return out


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    r = fn(*args)
    return (time.perf_counter() - t) * 1000, r


def import_cost(runs: int) -> dict:
    py = sys.executable
    cum = []
    for _ in range(runs):
        err = subprocess.run([py, "-X", "importtime", "-c", "import git"], capture_output=True, text=True).stderr
        line = [x for x in err.splitlines() if x.rstrip().endswith("| git")][-1]
        cum.append(int(line.split("|")[1]) / 1000)
    walls = {"pass": [], "import git": []}
    for _ in range(runs):
        for code in walls:
            t = time.perf_counter()
            subprocess.run([py, "-c", code], check=True)
            walls[code].append((time.perf_counter() - t) * 1000)
    return {"import_git_importtime_ms": round(statistics.median(cum), 1),
            "import_git_wall_ms": round(statistics.median(walls["import git"]) - statistics.median(walls["pass"]), 1)}


def sync_cost(work: Path, runs: int) -> dict:
    import shutil
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    py = sys.executable

    def git(cwd, *args):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)

    git(work, "init", "-q", "-b", "main", "seed")
    git(work / "seed", "commit", "-q", "--allow-empty", "-m", "seed")
    git(work, "clone", "-q", "--bare", "seed", "remote.git")
    git(work, "clone", "-q", "remote.git", "a")
    a = work / "a"
    for args in (["init"], ["sync"]):
        subprocess.run([py, "-m", "handoff", *args, "-o", "json"], cwd=a, check=True, capture_output=True, env=env)
    walls, shares, totals = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([py, "-m", "handoff", "sync", "-o", "json"], cwd=a, check=True, capture_output=True, env=env)
        walls.append((time.perf_counter() - t) * 1000)
        err = subprocess.run([py, "-X", "importtime", "-m", "handoff", "sync", "-o", "json"], cwd=a, check=True,
                             capture_output=True, text=True, env=env).stderr
        rows = [line.split("|") for line in err.splitlines() if line.startswith("import time:") and "|" in line]
        top = [r for r in rows if not r[2].startswith("  ")]  # top-level imports: their cumulative sums it all
        totals.append(sum(int(r[1]) for r in top[1:]) / 1000)  # (the header row first)
        shares.append(sum(int(r[1]) for r in rows if r[2].strip() == "git") / 1000)
    return {"sync_noop_wall_ms": round(statistics.median(walls), 1),
            "sync_import_total_ms": round(statistics.median(totals), 1),
            "sync_import_gitpython_ms": round(statistics.median(shares), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.environ.pop("GIT_DIR", None)
    repo = build(ROOT / "bench" / "out" / f"history-{a.commits}", a.commits)
    ways = {"plumbing": plumbing, "gitpython_diff": gitpython_diff, "gitpython_trees": gitpython_trees}
    times: dict[str, list[float]] = {k: [] for k in ways}
    ref = plumbing(repo)
    import git  # (paid once, outside the timings; import_cost below says what it costs)
    del git
    for _ in range(a.runs):
        for name, fn in ways.items():
            ms, got = timed(fn, repo)
            assert got == ref, f"{name} disagrees with plumbing ({len(got)} vs {len(ref)} files)"
            times[name].append(ms)
    result = {"commits": a.commits, "files": len(ref), "runs": a.runs,
              **{f"log_{k}_ms": round(statistics.median(v), 1) for k, v in times.items()},
              **import_cost(a.runs), **sync_cost(ROOT / "bench" / "out" / "sync-noop", a.runs)}
    if not a.json:
        for k, v in result.items():
            print(f"{k:28} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
