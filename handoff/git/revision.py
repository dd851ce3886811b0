"""Event files at any git revision (or in the index), read without a checkout.

A revision's events come from two git calls whatever their number:
``git ls-tree -r -z`` lists (mode, blob id, path) under ``.handoffs/events``
and one ``git cat-file --batch`` streams every blob.  Several revisions share
the second call (``read_blobs`` takes the union of their blob ids), so
reading a base and a head, or every remote-tracking branch, stays at a
constant number of processes.

``decode_blobs`` is the seam for a blob-id-keyed parse cache: blob ids name
content, so a parsed record can be reused for any revision holding the blob.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from handoff.core import reducer
from handoff.git import cmd as gitcmd

HANDOFFS = ".handoffs"
EVENTS_PREFIX = f"{HANDOFFS}/events/"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ARCHIVE_PREFIX = f"{HANDOFFS}/archive/"


@dataclass(frozen=True)
class Entry:
    """One file of a tree or the index: git mode, blob id, repo-relative path."""
    mode: str
    blob: str
    path: str

    @property
    def rel(self) -> str:
        """The path relative to ``.handoffs/`` (what ``reducer.decode`` expects)."""
        return self.path[len(HANDOFFS) + 1:] if self.path.startswith(HANDOFFS + "/") else self.path


def _z_lines(stdout: bytes):
    """``<meta fields>\t<path>`` records of git's ``-z`` listings, as (fields, path)."""
    for item in stdout.split(b"\0"):
        if item:
            meta, _, path = item.partition(b"\t")
            yield meta.decode().split(), path.decode("utf-8", "surrogateescape")


def tree_entries(cwd: Path, rev: str, prefix: str = f"{HANDOFFS}/") -> list[Entry]:
    """Every entry under ``prefix`` at ``rev`` (a commit, tree or ref), recursively."""
    proc = gitcmd.run(cwd, "ls-tree", "-r", "-z", "--full-tree", rev, "--", prefix.rstrip("/"))
    return [Entry(mode, blob, path) for (mode, _type, blob), path in _z_lines(proc.stdout)]


def index_entries(cwd: Path, prefix: str = f"{HANDOFFS}/", env: dict | None = None) -> list[Entry]:
    """Every stage-0 entry of the index under ``prefix`` (what the next commit will hold)."""
    proc = gitcmd.run(cwd, "ls-files", "-s", "-z", "--", prefix.rstrip("/"), env=env)
    out = [Entry(mode, blob, path) for (mode, blob, stage), path in _z_lines(proc.stdout) if stage == "0"]
    return out


def read_blobs(cwd: Path, blob_ids: Iterable[str], limit: int | None = None) -> dict[str, bytes]:
    """Contents of many blobs through ONE ``git cat-file --batch``; missing ids are left out.

    ``limit`` caps the bytes kept per blob (the rest is read and dropped), so
    a huge file cannot blow up memory; the codec reports it as too large.
    """
    ids = sorted(set(blob_ids))
    if not ids:
        return {}
    proc = gitcmd.run(cwd, "cat-file", "--batch", input=("\n".join(ids) + "\n").encode())
    data, pos, out = proc.stdout, 0, {}
    for _ in ids:
        nl = data.index(b"\n", pos)
        header = data[pos:nl].decode()
        pos = nl + 1
        parts = header.split()
        if len(parts) == 2 and parts[1] == "missing":
            continue
        oid, _type, size = parts[0], parts[1], int(parts[2])
        body = data[pos:pos + size]
        out[oid] = body if limit is None else body[:limit]
        pos += size + 1  # the trailing newline after each object
    return out


def is_event_entry(e: Entry) -> bool:
    return e.path.startswith(EVENTS_PREFIX) and e.path.endswith(".yaml") and not e.path.rsplit("/", 1)[-1].startswith(".")


def decode_entry(e: Entry, data: bytes | None) -> dict:
    """One entry to a reducer record; non-regular files are diagnostics, never read."""
    if e.mode != "100644":
        what = {"120000": "symlink", "160000": "submodule", "100755": "executable file"}.get(e.mode, f"mode {e.mode}")
        return {"path": e.rel, "error": {"reason_code": "malformed", "message": f"{what}: not read"}}
    if data is None:
        return {"path": e.rel, "error": {"reason_code": "malformed", "message": "blob missing from the repository"}}
    return reducer.decode(e.rel, data)


def decode_blobs(entries: list[Entry], blobs: dict[str, bytes]) -> list[dict]:
    """Records for ``entries`` given their blob contents (the cache seam: keyed by blob id)."""
    return [decode_entry(e, blobs.get(e.blob)) for e in entries]


def is_segment_entry(e: Entry) -> bool:
    return e.path.startswith(ARCHIVE_PREFIX) and e.path.endswith(".archive") and e.mode == "100644"


def read_segments(cwd: Path, entries: Iterable[Entry]) -> dict[str, bytes]:
    """The archive segments among ``entries``: blob id -> bytes, whole (segments are not capped like events)."""
    return read_blobs(cwd, {e.blob for e in entries if is_segment_entry(e)})


def unpack(entries: list[Entry], segments: dict[str, bytes], blobs: dict[str, bytes]) -> list[Entry]:
    """The event files the segments among ``entries`` hold, as entries (their bytes go into ``blobs``
    under their blob ids), less the paths ``entries`` hold as files; entries that fail
    ``archive.check`` are left out (``verify`` reports them)."""
    from handoff.core import archive
    have = {e.path for e in entries}
    out: dict[str, Entry] = {}
    for e in entries:
        if not is_segment_entry(e) or e.blob not in segments:
            continue
        good, _problems = archive.check(e.path, segments[e.blob])
        for path, blob, body in good:
            if path not in have and path not in out:
                out[path] = Entry("100644", blob, path)
                blobs.setdefault(blob, body)
    return [out[p] for p in sorted(out)]


def resolve(cwd: Path, rev: str) -> str:
    """A revision to its full commit id (or raise a not-found HandoffError)."""
    proc = gitcmd.run(cwd, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
    if proc.returncode != 0:
        from handoff.errors import HandoffError
        raise HandoffError("not_found", f"revision {rev!r} is not a commit in this repository",
                           hint="fetch it first (git fetch origin) or check the name")
    return proc.stdout.decode().strip()
