"""Commits that rewrite only the trees on the new files' paths: same result as a full index, user's work untouched."""
from __future__ import annotations

from handoff.app.workspace import Workspace
from handoff.git import commit as gitcommit


def tree(repo, rev="HEAD") -> list[str]:
    return repo.git("ls-tree", "-r", "--full-tree", rev).splitlines()


def test_each_write_adds_exactly_its_files_and_leaves_the_user_alone(repo):
    (repo.path / "a.txt").write_text("one\n")
    (repo.path / "b.txt").write_text("two\n")
    repo.git("add", "a.txt")
    (repo.path / "a.txt").write_text("one, edited again\n")
    status_before = repo.git("status", "--porcelain")
    s = repo.session("writer", "general", "sess_writer")
    for i in range(3):
        before = tree(repo)
        sent = repo.j("send", "--session", s["session_id"], "--channel", "general", "-m", f"hello {i}")
        assert sent["committed"] is True
        after = tree(repo)
        added = sorted(set(after) - set(before))
        assert len(added) == 1 and added[0].endswith("\t" + sent["paths"][0])
        assert set(before) <= set(after)
    assert repo.git("status", "--porcelain") == status_before  # staged a.txt, unstaged edits, untracked b.txt
    assert repo.git("diff", "--cached", "--name-only").split() == ["a.txt"]
    repo.git("fsck", "--strict", "--no-dangling")


def test_a_commit_made_meanwhile_by_someone_else_is_kept(repo):
    s = repo.session("writer", "general", "sess_writer")
    repo.ok("send", "--session", s["session_id"], "--channel", "general", "-m", "first")
    (repo.path / "human.txt").write_text("human work\n")
    repo.git("add", "human.txt")
    repo.git("commit", "-qm", "a human commit")
    sent = repo.j("send", "--session", s["session_id"], "--channel", "general", "-m", "second")
    assert sent["committed"] is True
    names = [line.split("\t", 1)[1] for line in tree(repo)]
    assert "human.txt" in names and sent["paths"][0] in names
    assert repo.git("log", "--format=%s", "-3").splitlines()[1] == "a human commit"
    repo.git("fsck", "--strict", "--no-dangling")


def test_flat_and_index_commits_build_the_same_tree(repo, tmp_path):
    import dataclasses
    s = repo.session("writer", "general", "sess_writer")
    sent = repo.j("send", "--session", s["session_id"], "--channel", "general", "-m", "x", "--no-commit")
    ws = Workspace(repo.path)
    head = repo.git("rev-parse", "HEAD").strip()
    entries = list(zip(sent["paths"], gitcommit.hash_files(ws.paths, sent["paths"])))
    flat = gitcommit.commit_entries(ws.paths, entries, "flat")
    flat_tree = repo.git("rev-parse", f"{flat}^{{tree}}").strip()
    repo.git("update-ref", "HEAD", head)
    via_index = gitcommit.commit_entries(dataclasses.replace(ws.paths, object_format="index"), entries, "index")
    assert repo.git("rev-parse", f"{via_index}^{{tree}}").strip() == flat_tree
    assert flat != via_index


def test_first_commit_on_an_unborn_branch(tmp_path):
    from conftest import Repo, git
    path = tmp_path / "fresh"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = Repo(path)
    res = repo.j("init", "--workspace", "w")
    assert res["commit"]
    s = repo.session("a", "general", "sess_a")
    assert repo.git("log", "--format=%s").splitlines()[-1].startswith("handoff: init")
    assert any(line.endswith(".yaml") for line in tree(repo)) and s["session_id"] == "sess_a"
    repo.git("fsck", "--strict", "--no-dangling")
