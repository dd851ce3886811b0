"""Many writers at once: every event written once, committed once, nothing lost.

Real processes only.  Writers in one worktree and in linked worktrees of the
same repository, while a person commits unrelated files in a loop.
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

import pytest
from support.reliability import (
    collect,
    event_files,
    fsck_clean,
    git,
    handoff_commits_touch_only_handoffs,
    head_tree,
    no_temp_files,
    parse_all,
    scale,
    spawn_console_loop,
    spawn_send_loop,
)

pytestmark = pytest.mark.slow  # scaled up with HANDOFF_HEAVY=1


def _sessions(repo, n: int, channel: str = "general") -> list[str]:
    return [repo.session(f"writer{i}", channel, sid=f"sess_w{i}")["session_id"] for i in range(n)]


def _assert_all_committed_once(worktree, sent_ids: list[str], rev: str = "HEAD") -> int:
    """Every event is in ``rev``; handoff's commits never delete; an event file is added exactly once, except
    when a person's commit took it out (a plain `git commit` writing back a stale index; see
    Workspace._dropped): then a later handoff commit put it back.  Returns how many times that happened."""
    files = event_files(worktree)
    assert len(sent_ids) == len(set(sent_ids)), "an id was reported twice"
    missing = [e for e in sent_ids if e not in files]
    assert not missing, f"events reported as written but missing: {missing[:5]}"
    added: Counter = Counter()
    taken_out: Counter = Counter()
    subject = ""
    for line in git(worktree, "log", rev, "--format=@@%s", "--name-status", "--no-renames").splitlines():
        if line.startswith("@@"):
            subject = line[2:]
            continue
        status, _, path = line.partition("\t")
        if not path.startswith(".handoffs/"):
            continue
        if status == "A":
            added[path] += 1
        elif status == "D":
            assert not subject.startswith("handoff:"), f"handoff commit {subject!r} deleted {path}"
            taken_out[path] += 1
    tree = head_tree(worktree, rev)
    for eid in sent_ids:
        path = files[eid]
        assert added[path] == 1 + taken_out[path], f"{path} added {added[path]} times, taken out {taken_out[path]}"
        assert path in tree, f"{path} not in {rev}"
    handoff_commits_touch_only_handoffs(worktree, rev)
    return sum(taken_out.values())


def test_eight_processes_twenty_five_events_each(repo):
    """Foundation acceptance: 8 processes x 25 events at once into one worktree."""
    writers, per = 8, 25
    sessions = _sessions(repo, writers)
    procs = [spawn_console_loop(repo.path, sessions[0], "general", per, "w0")]  # the real console entry
    procs += [spawn_send_loop(repo.path, sessions[i], "general", per, f"w{i}") for i in range(1, writers)]
    sent = collect(procs)
    assert len(sent) == writers * per
    assert all(committed for _, committed in sent), "a send in a clean worktree was not committed"
    ids = [e for e, _ in sent]
    _assert_all_committed_once(repo.path, ids)
    assert repo.j("status")["messages_by_kind"] == {"say": writers * per}
    assert repo.j("status")["uncommitted_events"] == 0
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    fsck_clean(repo.path)
    no_temp_files(repo.path)
    parse_all(repo.path)
    v = repo.h("verify", "--all", "-o", "json")
    assert v.code == 0, v.out


class Person(threading.Thread):
    """Someone committing unrelated files in a loop, with git's own porcelain, retrying when git is busy."""

    def __init__(self, worktree, name: str, count: int, pathspec: bool):
        super().__init__(daemon=True)
        self.worktree, self.name, self.count, self.pathspec = worktree, name, count, pathspec
        self.committed: list[str] = []
        self.retries = 0
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            i = 0
            while i < self.count or not self.stop.is_set():  # at least `count`, and for as long as writers run
                rel = f"src/{self.name}_{i}.txt"
                path = self.worktree / rel
                path.parent.mkdir(exist_ok=True)
                path.write_text(f"{self.name} change {i}\n")
                for _attempt in range(200):
                    add = subprocess.run(["git", "add", rel], cwd=self.worktree, capture_output=True, text=True)
                    if add.returncode == 0:
                        only = ["--", rel] if self.pathspec else []  # `git commit -- path` or plain `git commit`
                        c = subprocess.run(["git", "commit", "-q", "-m", f"person {self.name} {i}", *only],
                                           cwd=self.worktree, capture_output=True, text=True)
                        if c.returncode == 0:
                            break
                    self.retries += 1  # git busy (index.lock, HEAD moved): a person would just run it again
                    time.sleep(0.005)
                else:
                    raise AssertionError(f"could not commit {rel}: {c.stderr}")
                self.committed.append(rel)
                i += 1
                time.sleep(0.002)
        except Exception as exc:  # reported by the test
            self.error = repr(exc)


def test_linked_worktrees_with_a_person_committing(repo, tmp_path):
    """Writers in the main worktree and two linked worktrees, while people commit in two of them."""
    per = scale(8, 40)
    side = tmp_path / "side"
    other = tmp_path / "other"
    sessions = _sessions(repo, 6)
    git(repo.path, "worktree", "add", "-q", "-b", "side", str(side))
    git(repo.path, "worktree", "add", "-q", "-b", "other", str(other))
    # Staged, unstaged and untracked work in a busy worktree must survive untouched.
    (other / "README.txt").write_text("project\nunstaged edit\n")
    (other / "staged.txt").write_text("staged\n")
    git(other, "add", "staged.txt")
    (other / "untracked.txt").write_text("untracked\n")
    user_state = (("status", "--porcelain", "--untracked-files=all"), ("diff", "--full-index"),
                  ("diff", "--cached", "--full-index"))  # full ids: abbreviations grow with the object count
    before = [git(other, *args) for args in user_state]

    people = [Person(repo.path, "alice", per, pathspec=False), Person(side, "bob", per, pathspec=True)]
    for p in people:
        p.start()
    procs = [spawn_send_loop(repo.path, sessions[0], "general", per, "main-a"),
             spawn_send_loop(repo.path, sessions[1], "general", per, "main-b"),
             spawn_send_loop(side, sessions[2], "general", per, "side-a"),
             spawn_send_loop(side, sessions[3], "general", per, "side-b"),
             spawn_send_loop(other, sessions[4], "general", per, "other-a"),
             spawn_send_loop(other, sessions[5], "general", per, "other-b")]
    sent = collect(procs)
    for p in people:
        p.stop.set()
        p.join(timeout=300)
        assert p.error is None, p.error
        assert len(p.committed) >= per
    assert len(sent) == 6 * per
    by_tag = {}
    skipped = {}
    for (eid, committed), tag in zip(sent, [t for t in ("main", "side", "other") for _ in range(2 * per)]):
        by_tag.setdefault(tag, []).append(eid)
        skipped[tag] = skipped.get(tag, 0) + (not committed)
    # A write whose commit could not land (the index stayed locked, HEAD kept moving) says so and leaves a
    # pending marker, and a person's commit can take a just-committed event out of the branch; in both cases
    # the next write in that worktree commits the file.  Do what the next agent would do.
    for wt, tag, sid in ((repo.path, "main", sessions[0]), (side, "side", sessions[2]), (other, "other", sessions[4])):
        r = repo.h("send", "--repo", str(wt), "--session", sid, "--channel", "general", "--text", "next write",
                   "-o", "json")
        assert r.code == 0 and r.json["committed"] is True, r.out
        by_tag[tag].append(r.json["id"])
    print(f"commits skipped and taken by the next write: {skipped}")
    taken_out = 0
    for wt, tag, branch in ((repo.path, "main", "main"), (side, "side", "side"), (other, "other", "other")):
        taken_out += _assert_all_committed_once(wt, by_tag[tag], branch)
    print(f"event files a person's commit took out and the next write put back: {taken_out}")
    # The people's commits are all there, each holding its own file.  A plain `git commit` that races with
    # a write may also carry that write's event file (handoff stages it before moving the branch, so the
    # person's commit can never drop it); nothing else ever rides along.
    carried = 0
    for person, wt in zip(people, (repo.path, side)):
        tree = head_tree(wt)
        assert all(rel in tree for rel in person.committed)
        log = git(wt, "log", "--format=@@%s", "--name-only", "--grep", f"^person {person.name} ")
        files_by_commit = {}
        for line in log.splitlines():
            if line.startswith("@@"):
                subject = line[2:]
                files_by_commit[subject] = []
            elif line.strip():
                files_by_commit[subject].append(line)
        for i, rel in enumerate(person.committed):
            shown = files_by_commit[f"person {person.name} {i}"]
            assert [p for p in shown if not p.startswith(".handoffs/events/")] == [rel]
            carried += len(shown) - 1
    print(f"people committed {sum(len(p.committed) for p in people)} times ({sum(p.retries for p in people)} "
          f"retries); {carried} event files rode along in a person's commit")
    # and the uncommitted work in the third worktree is exactly as it was, byte for byte
    after = [git(other, *args) for args in user_state]
    assert after == before
    for wt in (repo.path, side):
        assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    fsck_clean(repo.path)
    for wt in (repo.path, side, other):
        no_temp_files(wt)
        parse_all(wt)
