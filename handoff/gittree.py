"""Committing new files by rewriting only the trees on their paths.

``git read-tree HEAD`` + ``write-tree`` (and GitPython's index) read and
write an entry for every file in the repository, so the cost of one commit
grows with history (reference/storage.md section 6: 64 ms at 10,000 events,
393 ms at 100,000).  A new event file only changes the trees on its own path
(``/``, ``.handoffs``, ``events``, the month, the day), so we rewrite just
those: read them (one ``git cat-file --batch``, or the copies kept from our
own previous commit), add the entries, serialise the new tree objects in
Python, have git store them (one ``hash-object -w -t tree``), then
``commit-tree`` and a compare-and-swap ``update-ref`` as before.  The cost is
the same at 1,000 events and at 100,000.

Blob ids always come from ``git hash-object`` (so clean filters and
attributes apply exactly as ``git add`` would apply them); tree ids are
checked against git's.  SHA-1 repositories only; others use the index path.
"""
from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path

from . import gitcmd
from .errors import HandoffError

_CACHE = "trees.cache"  # under the shared dir: the trees of our last commit, keyed by that commit


def flat_commit(paths: "gitcmd.RepoPaths", rel_paths: list[str], message: str, head: str | None = None) -> str | None:
    wt = paths.worktree
    blobs = gitcmd.out(wt, "hash-object", "-w", "--stdin-paths", input="\n".join(rel_paths).encode()).split()
    if len(blobs) != len(rel_paths):
        raise HandoffError("git_failed", "git hash-object did not hash every file", hint="run the command again")
    files = dict(zip(rel_paths, blobs))
    dirs = _dirs_of(rel_paths)
    info = "".join(f"100644 {b}\t{p}\0" for p, b in files.items()).encode()
    sign = None
    for _attempt in range(20):
        if head is None:
            proc = gitcmd.run(wt, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
            head = proc.stdout.decode().strip() if proc.returncode == 0 else ""
        old = _read_trees(paths, head, dirs) if head else {d: None for d in dirs}
        new = _build(old, files, dirs)
        root_sha = new[""][0]
        if head and old[""] is not None and old[""][0] == root_sha:
            gitcmd.sync_real_index(paths, info)
            return None  # already committed (a crash after the commit, before the cleanup)
        _write_trees(paths, new)
        if sign is None:
            sign = gitcmd.sign_commits(paths)
        args = ["commit-tree", root_sha, "-m", message] + (["-p", head] if head else []) + (["-S"] if sign else [])
        commit = gitcmd.out(wt, *args)
        proc = gitcmd.run(wt, "update-ref", "-m", message, "HEAD", commit, head or "0" * 40, check=False)
        if proc.returncode == 0:
            break
        head = None  # HEAD moved (a human commit, another writer): build again on top of it
    else:
        raise HandoffError("git_failed", "HEAD kept moving while committing; events are written but not committed",
                           hint="run any handoff write command again to commit them")
    _save_cache(paths, commit, new)
    gitcmd.sync_real_index(paths, info)
    return commit


def _dirs_of(rel_paths: list[str]) -> list[str]:
    """Every directory on the paths, "" being the root."""
    out = {""}
    for rel in rel_paths:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)


# ------------------------------------------------------------------ tree objects


def parse_tree(raw: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """name -> (mode, 20-byte id), from a raw tree object."""
    out = {}
    i, n = 0, len(raw)
    while i < n:
        sp = raw.index(b" ", i)
        nul = raw.index(b"\0", sp)
        out[raw[sp + 1:nul]] = (raw[i:sp], raw[nul + 1:nul + 21])
        i = nul + 21
    return out


def _sort_key(item) -> bytes:
    name, (mode, _oid) = item
    return name + b"/" if mode in (b"40000", b"040000") else name


def serialize_tree(entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    return b"".join(mode + b" " + name + b"\0" + oid for name, (mode, oid) in sorted(entries.items(), key=_sort_key))


def _tree_id(raw: bytes) -> str:
    return hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest()


def _build(old: dict, files: dict[str, str], dirs: list[str]) -> dict[str, tuple[str, bytes]]:
    """The new trees along the paths: dir -> (id, raw), deepest first."""
    new: dict[str, tuple[str, bytes]] = {}
    for d in sorted(dirs, key=lambda x: x.count("/") + (x != ""), reverse=True):
        entries = dict(parse_tree(old[d][1])) if old.get(d) else {}
        prefix = f"{d}/" if d else ""
        for rel, blob in files.items():
            if rel.startswith(prefix) and "/" not in rel[len(prefix):]:
                entries[rel[len(prefix):].encode()] = (b"100644", bytes.fromhex(blob))
        for sub in dirs:
            if sub and sub.startswith(prefix) and "/" not in sub[len(prefix):] and sub != d:
                name = sub[len(prefix):].encode()
                prev = entries.get(name)
                if prev is not None and prev[0] not in (b"40000", b"040000"):
                    raise HandoffError("git_failed", f"{sub} is a file in HEAD, not a directory",
                                       hint="move it away so .handoffs/ can hold events")
                entries[name] = (b"40000", bytes.fromhex(new[sub][0]))
        raw = serialize_tree(entries)
        new[d] = (_tree_id(raw), raw)
    return new


def _read_trees(paths, head: str, dirs: list[str]) -> dict[str, tuple[str, bytes] | None]:
    """The trees at ``dirs`` in ``head`` (None where there is none), from our cache or one cat-file."""
    cache = _load_cache(paths, head)
    out: dict[str, tuple[str, bytes] | None] = {}
    missing = []
    for d in sorted(dirs, key=lambda x: x.count("/") + (x != "")):
        if d in cache:
            out[d] = cache[d]
            continue
        parent = d.rsplit("/", 1)[0] if "/" in d else ""
        if d and parent in out and (out[parent] is None or
                                    d.rsplit("/", 1)[-1].encode() not in parse_tree(out[parent][1])):
            out[d] = None  # its parent has no such entry
            continue
        missing.append(d)
    if missing:
        specs = "".join(f"{head}^{{tree}}\n" if d == "" else f"{head}:{d}\n" for d in missing).encode()
        data = gitcmd.run(paths.worktree, "cat-file", "--batch", input=specs).stdout
        i = 0
        for d in missing:
            nl = data.index(b"\n", i)
            header = data[i:nl].split()
            i = nl + 1
            if len(header) < 3 or header[1] == b"missing":
                out[d] = None
                continue
            size = int(header[2])
            body = data[i:i + size]
            i += size + 1
            if header[1] != b"tree":
                if d:
                    raise HandoffError("git_failed", f"{d} is a {header[1].decode()} in HEAD, not a directory",
                                       hint="move it away so .handoffs/ can hold events")
                out[d] = None
                continue
            out[d] = (header[0].decode(), body)
    return out


def _write_trees(paths, new: dict[str, tuple[str, bytes]]) -> None:
    """Have git store the new tree objects (deepest first), and check it agrees on their ids."""
    tmp = paths.local / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    names = []
    try:
        for i, (d, (sha, raw)) in enumerate(new.items()):
            name = tmp / f"tree.{os.getpid()}.{i}"
            name.write_bytes(raw)
            names.append(name)
        ids = gitcmd.out(paths.worktree, "hash-object", "-w", "-t", "tree", "--stdin-paths",
                         input="\n".join(str(n) for n in names).encode()).split()
    finally:
        for name in names:
            try:
                name.unlink()
            except OSError:
                pass
    if ids != [sha for sha, _raw in new.values()]:
        raise HandoffError("git_failed", "git computed different tree ids than expected",
                           hint="report this; `handoff` can commit through the index instead")


def _load_cache(paths, head: str) -> dict:
    try:
        data = marshal.loads((paths.shared / _CACHE).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(data, dict) or data.get("head") != head or not isinstance(data.get("trees"), dict):
        return {}
    return data["trees"]


def _save_cache(paths, commit: str, new: dict) -> None:
    try:
        path: Path = paths.shared / _CACHE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps({"head": commit, "trees": dict(new)}))
        os.replace(tmp, path)  # a cache: no fsync (a torn or stale one is simply not used)
    except OSError:
        pass
