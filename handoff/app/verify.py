"""``handoff verify``: gather what git holds for a range, let ``checks`` judge it.

The range is ``base..head`` where head is a commit (``--rev``, default HEAD)
or the index (``--staged``, for a pre-commit hook), and base defaults to the
merge base with the default branch.  Nothing is checked out: the trees come
from ``ls-tree``, the blobs from one ``cat-file --batch`` shared by base and
head, so the number of git calls does not grow with the number of files.
"""
from __future__ import annotations

import os
from pathlib import Path

from handoff.core import approvals, archive, checks, reducer
from handoff.core.config import parse_config_or_empty
from handoff.core.yaml import codec
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.git import remotes, revision, signing
from handoff.git.revision import EMPTY_TREE, HANDOFFS
from handoff.store import clock

MAX_SKEW_MS = 3600 * 1000
MAX_BACKDATE_MS = 24 * 3600 * 1000  # an event dated more than this before the commit that adds it
DEFAULT_BRANCH_CANDIDATES = ("refs/remotes/origin/HEAD", "refs/remotes/origin/main", "refs/remotes/origin/master",
                             "refs/heads/main", "refs/heads/master")


def default_base(cwd: Path, head: str) -> tuple[str, str | None]:
    """(merge base with the default branch, that branch); the empty tree when there is none."""
    proc = gitcmd.run(cwd, "rev-parse", "--symbolic-full-name", "--verify", "-q", "HEAD", check=False)
    current = proc.stdout.decode().strip()
    for ref in DEFAULT_BRANCH_CANDIDATES:
        if ref == current:
            continue
        proc = gitcmd.run(cwd, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
        if proc.returncode == 0:
            return merge_base(cwd, ref, head), ref
    return EMPTY_TREE, None


def merge_base(cwd: Path, a: str, b: str) -> str:
    proc = gitcmd.run(cwd, "merge-base", a, b, check=False)
    if proc.returncode != 0:
        return EMPTY_TREE  # unrelated histories: everything on head is new
    return proc.stdout.decode().strip()


def _head_commit(cwd: Path) -> str | None:
    proc = gitcmd.run(cwd, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def resolve_range(cwd: Path, *, base: str | None, rev: str | None, staged: bool, everything: bool,
                  against: str | None = None) -> dict:
    if staged and rev:
        raise HandoffError("usage", "--staged and --rev are exclusive", hint="--staged checks the index against HEAD")
    if against and (base or everything):
        raise HandoffError("usage", "--against is exclusive with --base and --all",
                           hint="--base REV compares with the merge base (a pull request); --against REV with "
                                "REV itself (a push: catches a force-push that dropped events)")
    if staged:
        head = None
    elif rev is None and _head_commit(cwd) is None:
        head = EMPTY_TREE  # no commit yet: nothing committed to check
    else:
        head = revision.resolve(cwd, rev or "HEAD")
    anchor = None if head == EMPTY_TREE else (head or _head_commit(cwd))
    if against:
        return {"base": revision.resolve(cwd, against), "head": head, "against": against, "staged": staged,
                "exact": True, "base_source": "against"}
    against = None
    if everything:
        base_id, source = EMPTY_TREE, "all"
    elif anchor is None:
        base_id, source = EMPTY_TREE, "no_commit"
    elif base:
        base_id = merge_base(cwd, revision.resolve(cwd, base), anchor)
        against, source = base, "base"
    elif staged:
        base_id = anchor
        against, source = "HEAD", "staged"
    else:
        base_id, against = default_base(cwd, anchor)
        source = "default_branch" if against else "none"
    return {"base": base_id, "head": head, "against": against, "staged": staged, "exact": False,
            "base_source": source}


def index_env() -> dict | None:
    """Inside a pre-commit hook git names the index being committed (``git commit -a`` uses a temporary
    one); ``--staged`` must read that index, so this variable is passed on, made absolute."""
    idx = os.environ.get("GIT_INDEX_FILE")
    return gitcmd.clean_env({"GIT_INDEX_FILE": os.path.abspath(idx)}) if idx else None


def _diff(cwd: Path, rng: dict) -> list[checks.Change]:
    args = ["diff", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-ext-diff", "--no-textconv"]
    if rng["staged"]:
        args += ["--cached", rng["base"]]
    else:
        args += [rng["base"], rng["head"]]
    env = index_env() if rng["staged"] else None
    return checks.parse_raw_diff(gitcmd.run(cwd, *args, "--", HANDOFFS, env=env).stdout)


def _added_lookup(cwd: Path, rng: dict):
    """path -> {"author", "committer", "at"} of the commit that added it (or of the commit being made,
    with --staged): the emails the identity check compares, and the author time (ms) the back-dating
    check compares (a rebase keeps author times, so rebased events are not flagged)."""
    if rng["staged"]:
        idents = {k: gitcmd.out(cwd, "var", var) for k, var in (("author", "GIT_AUTHOR_IDENT"),
                                                                ("committer", "GIT_COMMITTER_IDENT"))}
        info: dict[str, str | int | None] = {k: v[v.find("<") + 1:v.find(">")] if "<" in v else None
                                             for k, v in idents.items()}
        stamp = idents["author"].rpartition(">")[2].split()
        info["at"] = int(stamp[0]) * 1000 if stamp and stamp[0].isdigit() else None
        return lambda path: info
    span = rng["head"] if rng["base"] == EMPTY_TREE else f"{rng['base']}..{rng['head']}"
    data = gitcmd.run(cwd, "log", "-z", "--no-renames", "--diff-filter=A", "--name-only",
                      "--format=%x01%ae%x02%ce%x02%at", span, "--", f"{HANDOFFS}/events"
                      ).stdout.decode("utf-8", "surrogateescape")
    by_path: dict[str, dict] = {}
    for chunk in data.split("\x01")[1:]:
        meta, _, files = chunk.partition("\0")
        author, committer, at = (meta.split("\x02") + ["", "", ""])[:3]
        info = {"author": author.strip(), "committer": committer.strip(),
                "at": int(at) * 1000 if at.strip().isdigit() else None}
        for f in files.split("\0"):
            f = f.strip("\n")
            if f:
                by_path.setdefault(f, info)  # newest first: the last commit that added it
    return lambda path: by_path.get(path, {})


def verify(repo: str | None, *, base: str | None = None, against: str | None = None, rev: str | None = None,
           staged: bool = False, everything: bool = False, use_remotes: bool = True,
           now_ms: int | None = None) -> dict:
    paths = gitcmd.discover(repo)
    cwd = paths.worktree
    now_ms = clock.now_ms() if now_ms is None else now_ms
    rng = resolve_range(cwd, base=base, against=against, rev=rev, staged=staged, everything=everything)
    changes = _diff(cwd, rng)
    head_entries = revision.index_entries(cwd, env=index_env()) if staged else revision.tree_entries(cwd, rng["head"])
    base_entries = [] if rng["base"] == EMPTY_TREE else revision.tree_entries(cwd, rng["base"])
    wanted = {e.blob for e in head_entries + base_entries if e.mode == checks.REGULAR}
    from handoff.core.yaml.codec import MAX_FILE_BYTES
    blobs = revision.read_blobs(cwd, wanted, limit=MAX_FILE_BYTES + 1)
    segments = revision.read_segments(cwd, head_entries + base_entries)
    changes, archive_findings = archive.vet(changes, {e.path: segments[e.blob] for e in head_entries
                                                      if revision.is_segment_entry(e) and e.blob in segments})
    head_entries = head_entries + revision.unpack(head_entries, segments, blobs)  # (sealed events count as files)
    base_entries = base_entries + revision.unpack(base_entries, segments, blobs)

    # New events are judged by the base's config (a range cannot vouch for itself); with no base
    # (--all, or nothing to compare with) the head's is all there is.
    head_config, base_config = _config(head_entries, blobs), _config(base_entries, blobs)
    trusted_entries = head_entries if rng["base"] == EMPTY_TREE else base_entries
    config = head_config if rng["base"] == EMPTY_TREE else base_config
    head_events = [e for e in head_entries if e.path.startswith(checks.EVENTS)]
    base_events = [e for e in base_entries if e.path.startswith(checks.EVENTS)]
    head_recs = _records(head_events, blobs)
    base_recs = _records(base_events, blobs)

    identity_changed = any(head_config.get(k) != base_config.get(k) for k in ("identity", "approvals"))  # (who vouches)
    append_findings, added = checks.append_only(changes, identity_changed, judged_by_base=rng["base"] != EMPTY_TREE)
    flagged = {f["path"] for f in append_findings if f["severity"] == "error"}
    base_paths = {e.path for e in base_entries}
    new_paths = {p for p in added if p not in base_paths} | {e.path for e in head_events if e.path not in base_paths}

    context = remotes.context_records(paths, config, {e.path for e in head_events} | base_paths) if use_remotes else []
    context, rival_opens = checks.split_rival_opens(context, list(head_recs.values()) + list(base_recs.values()))
    elsewhere = {r["event"]["id"]: r.get("ref", "another branch") for r in context if "event" in r}
    head_ids = {r["event"]["id"] for r in head_recs.values() if "event" in r}
    elsewhere = {k: v for k, v in elsewhere.items() if k not in head_ids}
    added_by = _added_lookup(cwd, rng)

    findings = list(append_findings) + archive_findings
    findings += checks.file_checks(head_events, head_recs, lambda p: p in new_paths, now_ms=now_ms,
                                  max_skew_ms=MAX_SKEW_MS, elsewhere=elsewhere, skip=flagged,
                                  added_at=lambda p: added_by(p).get("at"), max_backdate_ms=MAX_BACKDATE_MS,
                                  backdated_severity="warning" if rng["exact"] else "error")
    admins, policy = checks.admins_of(config), approvals.policy_of(config)
    head_state = reducer.reduce(list(head_recs.values()) + remotes.not_held(context, head_recs.values()), admins, policy)
    base_state = reducer.reduce(list(base_recs.values()) + remotes.not_held(context, base_recs.values()), admins, policy)
    new_events = [(p, head_recs[p]["event"]) for p in sorted(new_paths) if "event" in head_recs.get(p, {})]
    findings += checks.session_checks(new_events, base_state, rival_opens)
    findings += [f for f in checks.protocol_checks(base_state, head_state, {e.path for e in head_events})
                 if f["code"] != "session_taken" or f["path"] in new_paths]  # (an older open is the victim)

    findings += approvals.verify_findings(new_events, head_state, policy, lambda p: added_by(p).get("author"))
    ident = checks.identity_config(config)
    identity_status = "off"
    if ident:
        found = _identity(ident, trusted_entries, blobs, new_events, head_state, added_by)
        identity_status = "failed" if any(f["severity"] == "error" for f in found) else "passed"
        findings += found
    verdict = checks.summarize(findings)
    return {"ok": verdict["ok"], "base": rng["base"], "head": rng["head"] or "index", "against": rng["against"],
            "base_source": rng["base_source"], "exact": rng["exact"], "files": len(head_events),
            "new_files": len([p for p in new_paths if p.startswith(checks.EVENTS)]),
            "identity": bool(ident), "identity_status": identity_status,
            "errors": verdict["errors"], "warnings": verdict["warnings"], "findings": verdict["findings"]}


def _records(entries: list[revision.Entry], blobs: dict[str, bytes]) -> dict[str, dict]:
    """Decoded records by repo-relative path (regular .yaml files only; the rest is judged by checks)."""
    keep = [e for e in entries if e.mode == checks.REGULAR and revision.is_event_entry(e)]
    out = {e.path: rec for e, rec in zip(keep, revision.decode_blobs(keep, blobs))}
    for e in keep:  # a file rejected for its name still claims an id: duplicates must name it
        rec = out[e.path]
        if "error" in rec and e.blob in blobs:
            try:
                ev = codec.load(blobs[e.blob])
            except codec.CodecError:
                continue
            if isinstance(ev.get("id"), str):
                out[e.path] = dict(rec, id=ev["id"])
    return out


def _config(entries: list[revision.Entry], blobs: dict[str, bytes]) -> dict:
    for e in entries:
        if e.path == f"{HANDOFFS}/config.yaml" and e.blob in blobs:
            return parse_config_or_empty(blobs[e.blob])
    return {}


def _identity(ident: dict, trusted_entries, blobs, new_events, head_state, added_by) -> list[dict]:
    check_sig = None
    if ident["signatures"]:
        signers_path = f"{HANDOFFS}/{ident['allowed_signers']}"
        signers = next((blobs.get(e.blob) for e in trusted_entries if e.path == signers_path), None)
        if signers is None:
            return [checks.finding("error", signers_path, "no_allowed_signers",
                                  "identity.signatures is on but this file is missing")]

        def check_sig(ev: dict, principal: str) -> str | None:
            return signing.verify(signing.canonical(ev), ev["sig"], signers, principal)
    which = ident["email_of"]
    return checks.identity_checks(new_events, ident, checks.agent_resolver(head_state),
                                  lambda p: added_by(p).get(which), check_sig)
