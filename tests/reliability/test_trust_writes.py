"""Where handoff writes, and what it leaves: hostile symlinks, sync and other people's commits, hooks
tracked in the work tree, temp files of killed writers.

Everything goes through the real CLI, real git repositories, real pushes and merges, and a real process
killed with SIGKILL.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_repo
from support.reliability import child_env, git


def _now_env() -> dict:
    """Pin "now" for a test so the day folder the next write uses is known (and cannot pass midnight)."""
    from handoff.core import model
    from handoff.store import clock
    return {"HANDOFF_NOW": model.format_ts(clock.now_ms())}


def _day_folder(env: dict) -> str:
    """The day folder (``.handoffs/events/YYYY-MM/DD``) the tool computes for an event written at ``env``'s now."""
    from handoff.core import model
    from handoff.store import clock
    ms = model.parse_ts(env["HANDOFF_NOW"])
    ev = {"id": model.new_event_id("say", clock.new_ulid(ms)), "kind": "say", "from": "x.sess_x"}
    return ".handoffs/" + model.event_path(ev).rsplit("/", 1)[0]


def _files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _doctor(repo) -> dict:
    r = repo.h("doctor", "-o", "json")
    return {c["check"]: c for c in r.json["checks"]}


# ------------------------------------------------------------------ symlinks


def test_handoffs_symlinked_outside_is_refused_and_named_by_doctor(tmp_path):
    repo = make_repo(tmp_path / "repo")
    sid = repo.session("alice", "dev")["session_id"]
    outside = tmp_path / "elsewhere"
    shutil.move(str(repo.path / ".handoffs"), str(outside))
    os.symlink(outside, repo.path / ".handoffs")
    before_outside = _files_under(outside)
    head = repo.git("rev-parse", "HEAD")

    for args in (["send", "--session", sid, "--channel", "dev", "--text", "hi"],
                 ["send", "--session", sid, "--channel", "dev", "--text", "hi", "--no-commit"],
                 ["status"]):
        r = repo.h(*args, "-o", "json")
        assert r.code != 0, args
        err = r.json["error"]
        assert err["reason_code"] == "symlink_refused", err
        assert ".handoffs" in err["message"] and str(outside) in err["message"] and err["hint"]
    human = repo.h("send", "--session", sid, "--channel", "dev", "--text", "hi")
    assert human.code != 0 and "symlink" in human.err and "Traceback" not in human.err

    assert _files_under(outside) == before_outside  # nothing written through the link
    assert repo.git("rev-parse", "HEAD") == head  # nothing committed
    pending = repo.path / ".git" / "handoff" / "pending"
    assert not pending.is_dir() or not os.listdir(pending)  # no marker of a write to come

    checks = _doctor(repo)
    assert checks["symlinks"]["status"] == "fail"
    assert ".handoffs -> " + str(outside) in checks["symlinks"]["message"]
    assert checks["symlinks"]["fix"]
    assert checks[".handoffs/"]["status"] == "fail"
    assert repo.h("doctor").code != 0


def test_init_does_not_follow_a_handoffs_symlink(tmp_path):
    repo = make_repo(tmp_path / "repo", init=False)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, repo.path / ".handoffs")
    r = repo.h("init", "-o", "json")
    assert r.code != 0 and r.json["error"]["reason_code"] == "symlink_refused"
    assert _files_under(outside) == []
    assert repo.git("log", "--format=%s").splitlines() == ["initial"]


def test_committed_symlinked_day_folder_is_refused_not_followed(tmp_path):
    env = _now_env()
    repo = make_repo(tmp_path / "repo")
    from handoff.core import model
    yesterday = {"HANDOFF_NOW": model.format_ts(model.parse_ts(env["HANDOFF_NOW"]) - 86_400_000)}
    sid = repo.j("session", "new", "--agent", "alice", "--channel", "dev", env=yesterday)["session_id"]
    day = _day_folder(env)
    assert day != _day_folder(yesterday)
    # someone else commits today's day folder as a symlink to a folder outside the repository
    outside = tmp_path / "outside-day"
    outside.mkdir()
    (repo.path / day).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, repo.path / day)
    repo.git("add", day)
    repo.git("-c", "user.name=Mallory", "-c", "user.email=m@example.com", "commit", "-qm", "add a link")
    head = repo.git("rev-parse", "HEAD")

    for extra in ([], ["--no-commit"]):
        r = repo.h("send", "--session", sid, "--channel", "dev", "--text", "lands outside?", *extra, "-o", "json",
                   env=env)
        assert r.code != 0, r.out
        err = r.json["error"]
        assert err["reason_code"] == "symlink_refused" and day in err["message"], err
    assert _files_under(outside) == []  # nothing landed outside
    assert repo.git("rev-parse", "HEAD") == head
    assert repo.git("status", "--porcelain") == ""

    # an event file waiting outside is never read through the link: the link is a diagnostic
    from handoff.core.yaml import codec
    (outside / "planted.yaml").write_bytes(codec.dump({"kind": "say"}))
    st = repo.j("status")
    assert st["sessions"] == 1
    checks = _doctor(repo)
    assert checks["symlinks"]["status"] == "fail" and day in checks["symlinks"]["message"]
    assert str(outside) in checks["symlinks"]["message"]

    # once the link is gone (as the hint says), the same write lands in a real folder and is committed
    repo.git("rm", "-q", "--cached", day)
    os.unlink(repo.path / day)
    repo.git("commit", "-qm", "remove the link")
    sent = repo.j("send", "--session", sid, "--channel", "dev", "--text", "now inside", env=env)
    assert sent["committed"] and sent["paths"][0].startswith(day + "/")
    assert not (repo.path / day).is_symlink() and (repo.path / sent["paths"][0]).is_file()
    assert _files_under(outside) == ["planted.yaml"]
    assert _doctor(repo)["symlinks"]["status"] == "ok"


@pytest.mark.parametrize("level", ["events", "month"])
def test_committed_symlinked_events_or_month_folder_is_refused(tmp_path, level):
    env = _now_env()
    repo = make_repo(tmp_path / "repo")
    from handoff.core import model
    yesterday = {"HANDOFF_NOW": model.format_ts(model.parse_ts(env["HANDOFF_NOW"]) - 40 * 86_400_000)}
    sid = repo.j("session", "new", "--agent", "alice", "--channel", "dev", env=yesterday)["session_id"]
    folder = ".handoffs/events" if level == "events" else _day_folder(env).rsplit("/", 1)[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    if (repo.path / folder).exists():
        shutil.rmtree(repo.path / folder)
    os.symlink(outside, repo.path / folder)
    repo.git("add", "-A", ".handoffs")
    repo.git("commit", "-qm", f"link {level}")
    head = repo.git("rev-parse", "HEAD")
    r = repo.h("send", "--session", sid, "--channel", "dev", "--text", "where to?", "-o", "json", env=env)
    assert r.code != 0
    assert r.json["error"]["reason_code"] == "symlink_refused" and folder in r.json["error"]["message"]
    assert _files_under(outside) == [] and repo.git("rev-parse", "HEAD") == head
    assert folder in _doctor(repo)["symlinks"]["message"]


# ------------------------------------------------------------------ temp files of killed writers

# A real writer (the CLI's own main) that SIGKILLs itself while its tree objects are on disk: at the
# moment gittree hands them to `git hash-object -t tree`.
_KILLED_AT_TREES = r"""
import os, signal, sys
from handoff.git import cmd as gitcmd
from handoff.faces.cli import main
real_out = gitcmd.out
def out(cwd, *args, **kw):
    if args[:1] == ("hash-object",) and "tree" in args:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_out(cwd, *args, **kw)
gitcmd.out = out
sys.exit(main(["send", "--repo", sys.argv[1], "--session", sys.argv[2], "--channel", "dev", "--text", "killed"]))
"""


def _tree_temps(repo) -> list[str]:
    tmp = repo.path / ".git" / "handoff" / "tmp"
    return sorted(n for n in os.listdir(tmp) if n.startswith("tree.")) if tmp.is_dir() else []


def test_tree_files_of_a_killed_writer_are_swept(repo):
    sid = repo.session("alice", "dev")["session_id"]
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT_TREES, str(repo.path), sid], capture_output=True,
                          text=True, env=child_env(), timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = _tree_temps(repo)
    assert left, "the killed writer should have left its tree files"
    # and one of the names an older version used, from a process long gone
    tmp = repo.path / ".git" / "handoff" / "tmp"
    (tmp / "tree.999999.0").write_bytes(b"stale")
    (tmp / "tree.999999.1").write_bytes(b"stale")
    sent = repo.j("send", "--session", sid, "--channel", "dev", "--text", "next write")
    assert sent["committed"]
    assert _tree_temps(repo) == []
    assert os.listdir(tmp) == []
    assert repo.git("status", "--porcelain") == ""


# ------------------------------------------------------------------ hooks tracked in the work tree


def test_hooks_install_never_touches_a_committed_hook(repo):
    hooks = repo.path / ".githooks"
    hooks.mkdir()
    theirs = "#!/bin/sh\n# the project's own pre-commit\nexit 0\n"
    (hooks / "pre-commit").write_text(theirs)
    (hooks / "pre-commit").chmod(0o755)
    repo.git("add", ".githooks/pre-commit")
    repo.git("commit", "-qm", "project hooks")
    repo.git("config", "core.hooksPath", ".githooks")

    r = repo.h("hooks", "install", "-o", "json")
    assert r.code != 0
    err = r.json["error"]
    assert err["reason_code"] == "hook_tracked" and ".githooks/pre-commit" in err["message"], err
    assert "handoff verify --staged" in err["hint"]
    human = repo.h("hooks", "install")
    assert human.code != 0 and "tracked by git" in human.err and "Traceback" not in human.err
    assert (hooks / "pre-commit").read_text() == theirs
    assert sorted(os.listdir(hooks)) == ["pre-commit"]  # nothing renamed, nothing added beside it
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""
    # the committed hook still runs, as before
    (repo.path / "a.txt").write_text("a\n")
    repo.git("add", "a.txt")
    repo.git("commit", "-qm", "user work")


def test_hooks_install_in_the_work_tree_says_the_new_hook_is_untracked(repo):
    repo.git("config", "core.hooksPath", ".githooks")
    human = repo.ok("hooks", "install").out
    assert "note: .githooks/pre-commit is in the work tree" in human and "untracked" in human
    assert repo.j("hooks", "uninstall")["removed"] is True  # untracked and ours: removed
    r = repo.j("hooks", "install")
    assert r["note"] and ".githooks/pre-commit" in r["note"] and "untracked" in r["note"]
    assert repo.git("status", "--porcelain", "--untracked-files=all").strip() == "?? .githooks/pre-commit"
    # committed as the project's hook, it is left alone from then on: install is a no-op, uninstall refuses
    repo.git("add", ".githooks/pre-commit")
    repo.git("commit", "-qm", "share the handoff hook")
    assert repo.j("hooks", "install")["updated"] is True
    u = repo.h("hooks", "uninstall", "-o", "json")
    assert u.code != 0 and u.json["error"]["reason_code"] == "hook_tracked"
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""


# ------------------------------------------------------------------ sync never rewrites the user's commits


def _user_merge(repo) -> str:
    """A real `git merge --no-ff` of a side branch (the user's own unpushed merge commit); returns its sha."""
    repo.git("checkout", "-qb", "side")
    (repo.path / "side.txt").write_text("side work\n")
    repo.git("add", "side.txt")
    repo.git("commit", "-qm", "side work")
    repo.git("checkout", "-q", "main")
    (repo.path / "main.txt").write_text("main work\n")
    repo.git("add", "main.txt")
    repo.git("commit", "-qm", "main work")
    repo.git("merge", "-q", "--no-ff", "side", "-m", "merge side")
    return repo.git("rev-parse", "HEAD").strip()


def _merges(cwd, rev: str) -> int:
    return len(git(cwd, "rev-list", "--merges", rev).split())


def _is_ancestor(cwd, a: str, b: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=cwd).returncode == 0


def _events_in(cwd, rev: str) -> set[str]:
    names = git(cwd, "ls-tree", "-r", "--name-only", rev, "--", ".handoffs/events").split()
    return {n.rsplit("/", 1)[-1].split(".", 1)[0] for n in names}


def test_sync_pushes_the_users_merge_as_it_is(clones):
    a = clones("a")
    merge = _user_merge(a)
    s = a.session("alice", "dev")["session_id"]
    sent = a.j("send", "--session", s, "--channel", "dev", "--text", "after my merge")
    head = a.git("rev-parse", "HEAD").strip()
    r = a.j("sync")
    assert r["pushed"] is True and r["integrated"] is None
    assert a.git("rev-parse", "HEAD").strip() == head  # nothing rewritten
    assert git(clones.remote, "rev-parse", "main").strip() == head
    assert _is_ancestor(clones.remote, merge, "main") and _merges(clones.remote, "main") == 1
    assert sent["id"] in _events_in(clones.remote, "main")


def test_sync_merges_instead_of_rebasing_the_users_commits(clones):
    a, b = clones("a"), clones("b")
    sb = b.session("bob", "dev")["session_id"]
    b.ok("send", "--session", sb, "--channel", "dev", "--text", "from b")
    b.ok("sync")  # the remote branch moves under a
    merge = _user_merge(a)
    sa = a.session("alice", "dev")["session_id"]
    sent = a.j("send", "--session", sa, "--channel", "dev", "--text", "from a")
    (a.path / "mine.txt").write_text("my plain commit\n")
    a.git("add", "mine.txt")
    a.git("commit", "-qm", "my plain commit")
    user_commits = a.git("rev-list", "--no-merges", "main", "^origin/main").split()
    before_merges = _merges(a.path, "HEAD")

    r = a.j("sync")
    assert r["pushed"] is True and r["integrated"] == "merge", r
    assert "never rewrites" in r["integrated_note"]
    human = a.ok("sync").out
    assert "up to date" in human
    for rev in ("HEAD", "origin/main"):
        assert _is_ancestor(a.path, merge, rev), rev  # the user's merge is there, same sha
        for c in user_commits:
            assert _is_ancestor(a.path, c, rev), (c, rev)  # and every other unpushed commit, same sha
    assert _merges(a.path, "HEAD") == before_merges + 1  # only the integration merge was added
    assert git(clones.remote, "rev-parse", "main").strip() == a.git("rev-parse", "HEAD").strip()
    remote_events = _events_in(clones.remote, "main")
    assert sent["id"] in remote_events and len(remote_events & _events_in(b.path, "HEAD")) >= 2
    b.ok("sync")
    assert _is_ancestor(b.path, merge, "HEAD")


def test_sync_still_rebases_when_only_handoff_commits_are_unpushed(clones):
    a, b = clones("a"), clones("b")
    b.session("bob", "dev")
    b.ok("sync")
    a.session("alice", "dev")
    mine = a.git("rev-list", "main", "^origin/main").split()
    r = a.j("sync")
    assert r["integrated"] == "rebase" and "integrated_note" not in r
    assert _merges(a.path, "HEAD") == 0  # linear: handoff's own commits were moved on top
    assert len(a.git("rev-list", "origin/main", "^" + b.git("rev-parse", "HEAD").strip()).split()) == len(mine)


def test_own_commit_rule():
    from handoff.app.sync import own_commit
    add = [("A", ".handoffs/events/2026-12/07/x.yaml")]
    assert own_commit(["p"], "handoff: say in dev from a", add)
    assert not own_commit(["p", "q"], "handoff: say", add)  # a merge is never ours
    assert not own_commit(["p"], "events by hand", add)  # a person's commit of event files
    assert not own_commit(["p"], "handoff: say", add + [("A", "src/x.py")])
    assert not own_commit(["p"], "handoff: say", [("M", ".handoffs/config.yaml")])
    assert not own_commit(["p"], "handoff: say", [])


def test_sync_conflict_leaves_the_users_commits_as_they_were(clones):
    a, b = clones("a"), clones("b")
    (b.path / "README.txt").write_text("b's line\n")
    b.git("commit", "-qam", "b edits the readme")
    b.ok("sync")
    (a.path / "README.txt").write_text("a's line\n")
    a.git("commit", "-qam", "a edits the readme")
    a.session("alice", "dev")
    head = a.git("rev-parse", "HEAD").strip()
    r = a.h("sync", "-o", "json")
    assert r.code != 0
    err = r.json["error"]
    assert err["reason_code"] == "sync_conflict" and err["message"].startswith("merge of "), err
    assert "nothing was changed" in err["message"] and err["hint"]
    assert a.git("rev-parse", "HEAD").strip() == head
    assert a.git("status", "--porcelain") == "" and not (a.path / ".git" / "MERGE_HEAD").exists()
    assert (a.path / "README.txt").read_text() == "a's line\n"


def test_hooks_install_chains_a_link_to_a_tracked_script_without_touching_it(repo):
    (repo.path / "scripts").mkdir()
    script = repo.path / "scripts" / "pre-commit"
    script.write_text("#!/bin/sh\necho project-hook >> \"$(git rev-parse --show-toplevel)/.ran\"\n")
    script.chmod(0o755)
    repo.git("add", "scripts/pre-commit")
    repo.git("commit", "-qm", "project hook script")
    hooks = repo.path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    os.symlink("../../scripts/pre-commit", hooks / "pre-commit")
    r = repo.j("hooks", "install")
    assert r["chained"] and os.path.islink(r["chained"]) and "note" not in r
    assert script.read_text().startswith("#!/bin/sh\necho project-hook")
    (repo.path / "a.txt").write_text("a\n")
    repo.git("add", "a.txt")
    repo.git("commit", "-qm", "user work")
    assert (repo.path / ".ran").read_text() == "project-hook\n"  # the chained script still runs
    assert repo.git("status", "--porcelain") == "?? .ran\n"


def test_hooks_install_never_writes_through_a_planted_link(repo, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    hooks = repo.path / ".githooks"
    hooks.mkdir()
    os.symlink(victim, hooks / ".pre-commit.handoff.tmp")  # as if committed with the project's hooks
    repo.git("config", "core.hooksPath", ".githooks")
    repo.j("hooks", "install")
    assert victim.read_text() == "precious\n"
    assert (hooks / ".pre-commit.handoff.tmp").is_symlink()  # left as it was
    assert sorted(os.listdir(hooks)) == [".pre-commit.handoff.tmp", "pre-commit"]  # no temp file left
    assert not (hooks / "pre-commit").is_symlink() and "handoff pre-commit hook" in (hooks / "pre-commit").read_text()
