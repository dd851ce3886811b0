"""Committing new files by rewriting only the trees on their paths.

``commit.commit_entries`` calls ``tree_with`` instead of a private index.

``git read-tree HEAD`` + ``write-tree`` (as would GitPython's index, unused here)
read and write an entry for every file in the repository, so the cost of one commit
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
from collections.abc import Sequence
from pathlib import Path

from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd

_CACHE = "trees.cache"  # under the shared dir: the trees of our last commit, keyed by that commit


def tree_with(paths, head: str | None, entries: list[tuple[str, str]],
              removed: Sequence[str] = ()) -> tuple[str, dict]:
    """The root tree id of ``head`` plus ``entries`` ((worktree path, blob id)) less ``removed`` (paths; a
    folder they leave empty goes too), with the new trees stored in the repository; and those trees, for
    ``remember`` once the commit lands."""
    files = dict(entries)
    gone = [p for p in removed if p not in files]
    dirs = _dirs_of(list(files) + gone)
    old = _read_trees(paths, head, dirs) if head else {d: None for d in dirs}
    new = _build(old, files, dirs, gone)
    if not (head and old[""] is not None and old[""][0] == new[""][0]):
        _write_trees(paths, new)
    return new[""][0], new


def remember(paths, commit: str, trees: dict) -> None:
    """Keep the trees of the commit we just made: the next write on top of it reads none from git."""
    _save_cache(paths, commit, trees)


def cached_root(paths, head: str) -> str | None:
    """The root tree id of ``head`` if it is our last commit."""
    root = _load_cache(paths, head).get("")
    return root[0] if root else None


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


def _build(old: dict, files: dict[str, str], dirs: list[str], gone: Sequence[str] = ()) -> dict[str, tuple[str, bytes]]:
    """The new trees along the paths: dir -> (id, raw), deepest first.  A folder left empty is dropped
    (git has no empty trees), and so is its entry in the folder above."""
    changes: dict[str, dict[bytes, bytes | None]] = {}  # dir -> name -> new blob id (None: removed)
    for rel in gone:
        d, _, leaf = rel.rpartition("/")
        changes.setdefault(d, {})[leaf.encode()] = None
    for rel, blob in files.items():
        d, _, leaf = rel.rpartition("/")
        changes.setdefault(d, {})[leaf.encode()] = bytes.fromhex(blob)
    subs: dict[str, list[str]] = {}
    for sub in dirs:
        if sub:
            subs.setdefault(sub.rpartition("/")[0], []).append(sub)
    new: dict[str, tuple[str, bytes]] = {}
    for d in sorted(dirs, key=lambda x: x.count("/") + (x != ""), reverse=True):
        entries = dict(parse_tree(old[d][1])) if old.get(d) else {}
        for key, oid in changes.get(d, {}).items():
            if oid is None:
                entries.pop(key, None)
            else:
                entries[key] = (b"100644", oid)
        for sub in subs.get(d, ()):
            name = sub.rpartition("/")[2].encode()
            prev = entries.get(name)
            if prev is not None and prev[0] not in (b"40000", b"040000"):
                raise HandoffError("git_failed", f"{sub} is a file in HEAD, not a directory",
                                   hint="move it away so .handoffs/ can hold events")
            if sub in new:
                entries[name] = (b"40000", bytes.fromhex(new[sub][0]))
            else:
                entries.pop(name, None)  # emptied by the removals
        if entries or d == "":
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
        if d and parent in out:
            above = out[parent]
            if above is None or d.rsplit("/", 1)[-1].encode() not in parse_tree(above[1]):
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
        for i, (_, raw) in enumerate(new.values()):
            name = tmp / f"tree.{os.getpid()}.{i}.part"  # swept like staged files if we are killed here
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
