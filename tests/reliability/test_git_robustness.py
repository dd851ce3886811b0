"""The foundation's robustness promises about git: the user's work, clones, merges in progress."""
from __future__ import annotations

import json

from support.reliability import fsck_clean, git


def _user_state(repo) -> list[str]:
    return [git(repo.path, *args) for args in (("status", "--porcelain", "--untracked-files=all"),
                                                ("diff", "--full-index"), ("diff", "--cached", "--full-index"),
                                                ("diff", "--cached", "--stat"))]


def test_send_leaves_the_users_work_exactly_as_it_was(repo):
    s = repo.session("alice", "general", sid="sess_alice")
    (repo.path / "README.txt").write_text("project\nan unstaged edit\n")
    (repo.path / "staged.txt").write_text("staged content\n")
    git(repo.path, "add", "staged.txt")
    (repo.path / "staged.txt").write_text("staged content\nplus an unstaged line on a staged file\n")
    (repo.path / "untracked.txt").write_text("untracked\n")
    (repo.path / "notes").mkdir()
    (repo.path / "notes" / "deep.txt").write_text("untracked in a directory\n")
    before = _user_state(repo)
    head = git(repo.path, "rev-parse", "HEAD").strip()
    for i in range(3):
        sent = repo.j("send", "--session", s["session_id"], "--channel", "general", "--text", f"hello {i}")
        assert sent["committed"] is True
        assert _user_state(repo) == before
        names = git(repo.path, "show", "--name-only", "--format=", "HEAD").split()
        assert names == sent["paths"]
        assert all(n.startswith(".handoffs/") for n in names)
    assert git(repo.path, "rev-list", "--count", f"{head}..HEAD").strip() == "3"
    fsck_clean(repo.path)


def test_clones_exchange_events_with_plain_git_and_never_conflict(clones):
    a, b = clones("a"), clones("b")
    a.ok("init", "--workspace", "test")
    git(a.path, "push", "-q", "origin", "HEAD")
    git(b.path, "pull", "-q", "--no-rebase")
    sa = a.session("alice", "general", sid="sess_alice")
    sb = b.session("bob", "general", sid="sess_bob")
    for rnd in range(4):
        for i in range(3):
            a.ok("send", "--session", sa["session_id"], "--channel", "general", "--text", f"a {rnd}.{i}")
            b.ok("send", "--session", sb["session_id"], "--channel", "general", "--text", f"b {rnd}.{i}")
        # both sides diverged; ordinary pull (merge) and push, in either order
        first, second = (a, b) if rnd % 2 == 0 else (b, a)
        git(first.path, "pull", "-q", "--no-rebase", "--no-edit")
        git(first.path, "push", "-q", "origin", "HEAD")
        out = git(second.path, "pull", "--no-rebase", "--no-edit")
        assert "CONFLICT" not in out
        git(second.path, "push", "-q", "origin", "HEAD")
        git(first.path, "pull", "-q", "--no-rebase", "--no-edit")
        views = []
        for r in (a, b):
            from handoff.app.workspace import Workspace
            state = Workspace(r.path).state().materialize()  # (the index's state is lazy: plain lists here)
            views.append(json.dumps({k: state[k] for k in ("messages", "sessions", "threads", "work", "diagnostics")},
                                    sort_keys=True))
        assert views[0] == views[1]
        assert a.ok("threads", "list", "--channel", "general", "-o", "json").out == \
            b.ok("threads", "list", "--channel", "general", "-o", "json").out
    # a rebase-style pull works too
    a.ok("send", "--session", sa["session_id"], "--channel", "general", "--text", "before rebase")
    b.ok("send", "--session", sb["session_id"], "--channel", "general", "--text", "before rebase too")
    git(a.path, "push", "-q", "origin", "HEAD")
    git(b.path, "pull", "-q", "--rebase")
    assert b.j("status")["messages"] == a.j("status")["messages"] + 1  # b holds a's events and its own
    for r in (a, b):
        fsck_clean(r.path)
        assert git(r.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_writes_during_a_merge_are_not_committed_and_the_next_write_commits_them(repo):
    s = repo.session("alice", "general", sid="sess_alice")["session_id"]
    base = git(repo.path, "rev-parse", "HEAD").strip()
    git(repo.path, "checkout", "-q", "-b", "feature")
    (repo.path / "README.txt").write_text("feature version\n")
    git(repo.path, "commit", "-qam", "feature edit")
    git(repo.path, "checkout", "-q", "main")
    (repo.path / "README.txt").write_text("main version\n")
    git(repo.path, "commit", "-qam", "main edit")
    merge = git(repo.path, "merge", "feature", check=False)
    assert (repo.path / ".git" / "MERGE_HEAD").exists(), merge
    head = git(repo.path, "rev-parse", "HEAD").strip()
    during = repo.j("send", "--session", s, "--channel", "general", "--text", "during the merge")
    assert during["committed"] is False and "merge" in during["commit_skipped"]
    assert git(repo.path, "rev-parse", "HEAD").strip() == head
    assert (repo.path / during["paths"][0]).is_file()
    # the person resolves and concludes the merge (with `git add -u`, not touching our file)
    (repo.path / "README.txt").write_text("resolved\n")
    git(repo.path, "add", "README.txt")
    git(repo.path, "commit", "-q", "--no-edit")
    after = repo.j("send", "--session", s, "--channel", "general", "--text", "after the merge")
    assert after["committed"] is True
    committed = git(repo.path, "show", "--name-only", "--format=", "HEAD").split()
    assert during["paths"][0] in committed and after["paths"][0] in committed
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo.path, "merge-base", "--is-ancestor", base, "HEAD", check=False) == ""


def test_writes_during_a_rebase_and_on_a_detached_head(repo):
    s = repo.session("alice", "general", sid="sess_alice")["session_id"]
    git(repo.path, "checkout", "-q", "--detach")
    det = repo.j("send", "--session", s, "--channel", "general", "--text", "detached")
    assert det["committed"] is False and "detached" in det["commit_skipped"]
    git(repo.path, "checkout", "-q", "main")
    # an interactive-style rebase stopped on a conflict
    git(repo.path, "checkout", "-q", "-b", "topic")
    (repo.path / "README.txt").write_text("topic\n")
    git(repo.path, "commit", "-qam", "topic edit")
    git(repo.path, "checkout", "-q", "main")
    (repo.path / "README.txt").write_text("main\n")
    git(repo.path, "commit", "-qam", "main edit")
    git(repo.path, "checkout", "-q", "topic")
    git(repo.path, "rebase", "main", check=False)
    assert (repo.path / ".git" / "rebase-merge").exists() or (repo.path / ".git" / "rebase-apply").exists()
    reb = repo.j("send", "--session", s, "--channel", "general", "--text", "rebasing")
    assert reb["committed"] is False and "rebase" in reb["commit_skipped"]
    git(repo.path, "rebase", "--abort")
    nxt = repo.j("send", "--session", s, "--channel", "general", "--text", "back to normal")
    assert nxt["committed"] is True
    names = git(repo.path, "show", "--name-only", "--format=", "HEAD").split()
    assert reb["paths"][0] in names and det["paths"][0] in names and nxt["paths"][0] in names
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    fsck_clean(repo.path)


def test_an_event_a_later_commit_took_out_is_committed_again_by_the_next_write(repo):
    """A plain `git commit` that read the index just before our write added the event file, and locked it
    just after our commit landed, writes its stale copy back; the person's next commit then takes the event
    out of the branch (the file stays on disk).  Here that outcome is produced directly with `git rm --cached`;
    the next write must notice and commit the file again."""
    s = repo.session("alice", "general", sid="sess_alice")["session_id"]
    first = repo.j("send", "--session", s, "--channel", "general", "--text", "first")
    rel = first["paths"][0]
    git(repo.path, "rm", "-q", "--cached", rel)
    git(repo.path, "commit", "-qm", "a person's commit built from a stale index")
    assert rel not in git(repo.path, "ls-tree", "-r", "--name-only", "HEAD") and (repo.path / rel).is_file()
    second = repo.j("send", "--session", s, "--channel", "general", "--text", "second")
    assert second["committed"] is True
    shown = git(repo.path, "show", "--format=%B", "--name-only", "HEAD")
    assert rel in shown and second["paths"][0] in shown and "took out" in shown
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
    # an event that is gone from disk too (the person switched branches, or deleted it) is left alone
    third = repo.j("send", "--session", s, "--channel", "general", "--text", "third")
    git(repo.path, "rm", "-q", third["paths"][0])
    git(repo.path, "commit", "-qm", "a person deletes an event outright")
    fourth = repo.j("send", "--session", s, "--channel", "general", "--text", "fourth")
    assert git(repo.path, "show", "--name-only", "--format=", "HEAD").split() == fourth["paths"]
    fsck_clean(repo.path)


def test_a_stale_index_written_back_by_git_commit_does_not_lose_the_event(repo):
    """The real mechanism, made deterministic: a plain `git commit` holding a copy of the index from before
    our write (GIT_INDEX_FILE pointing at a copy taken then) moves the branch without our file."""
    import shutil
    s = repo.session("alice", "general", sid="sess_alice")["session_id"]
    index = repo.path / ".git" / "index"
    stale = repo.path / ".git" / "index.stale"
    shutil.copy(index, stale)  # what the person's git read
    ours = repo.j("send", "--session", s, "--channel", "general", "--text", "ours")
    (repo.path / "work.txt").write_text("the person's change\n")
    env = dict(__import__("os").environ, GIT_INDEX_FILE=str(stale))
    git(repo.path, "add", "work.txt", env=env)
    git(repo.path, "commit", "-qm", "person", env=env)
    shutil.copy(stale, index)  # ... and wrote back
    stale.unlink()
    assert ours["paths"][0] not in git(repo.path, "ls-tree", "-r", "--name-only", "HEAD")
    nxt = repo.j("send", "--session", s, "--channel", "general", "--text", "next")
    tree = git(repo.path, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert ours["paths"][0] in tree and nxt["paths"][0] in tree and "work.txt" in tree
    assert git(repo.path, "status", "--porcelain", "--untracked-files=all") == ""
