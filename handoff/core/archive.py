"""Archive segments: sealed event files kept byte for byte in one immutable file (pure).

A segment lives at ``.handoffs/archive/<YYYY-MM>/<sha256 of its content>.archive`` and reads::

    handoff-archive v1
    file <repo-relative path> <git blob id> <size>
    <exactly size bytes: the event file as it was committed>
    file ...

one entry per sealed file, sorted by path, each followed by a newline.  Nothing in it depends on who
wrote it or when: two clones that seal the same files write the same bytes at the same path, so their
branches merge without a conflict; two different sets are two files side by side.  It is not
compressed: git packs and deltas it like any other blob (docs/PERFORMANCE.md).

Every sealed file keeps its blob id, so ``verify`` can prove that a removed event file is in the
archive unchanged (``check`` recomputes each entry's blob id from its bytes).
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

HEADER = b"handoff-archive v1\n"
ROOT = ".handoffs/archive"
EVENTS = ".handoffs/events/"
SUFFIX = ".archive"
_EVENT_PATH = re.compile(r"\.handoffs/events/(\d{4}-\d{2})/\d{2}/[^./\s][^/\s]*\.yaml")
_SEGMENT_PATH = re.compile(r"\.handoffs/archive/(\d{4}-\d{2})/([0-9a-f]{64})\.archive")


class ArchiveError(ValueError):
    """A segment that is not what ``encode`` writes."""


def blob_id(data: bytes) -> str:
    """The git (SHA-1) blob id of ``data``, as ``git hash-object`` prints it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def month_of(path: str) -> str | None:
    """``YYYY-MM`` of an event file path (repo-relative), None when it is not one."""
    m = _EVENT_PATH.fullmatch(path)
    return m.group(1) if m and ".." not in path else None


def is_segment_path(path: str) -> bool:
    return _SEGMENT_PATH.fullmatch(path) is not None


def encode(files: dict[str, bytes]) -> bytes:
    """The segment holding ``files`` (repo-relative path -> bytes): deterministic."""
    parts = [HEADER]
    for path in sorted(files):
        data = files[path]
        if month_of(path) is None:
            raise ArchiveError(f"{path!r} is not an event file path")
        parts.append(f"file {path} {blob_id(data)} {len(data)}\n".encode())
        parts.append(data)
        parts.append(b"\n")
    return b"".join(parts)


def segment_path(content: bytes, month: str) -> str:
    """Where a segment of ``month`` with this content lives (repo-relative)."""
    return f"{ROOT}/{month}/{hashlib.sha256(content).hexdigest()}{SUFFIX}"


def segments_of(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` sealed into one segment per month of their paths: {segment path: content}."""
    by_month: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        month = month_of(path)
        if month is None:
            raise ArchiveError(f"{path!r} is not an event file path")
        by_month.setdefault(month, {})[path] = data
    out = {}
    for month, group in sorted(by_month.items()):
        content = encode(group)
        out[segment_path(content, month)] = content
    return out


def decode(data: bytes) -> list[tuple[str, str, bytes]]:
    """A segment's entries as (path, blob id, bytes), in its order; ``ArchiveError`` when malformed.

    The blob ids are as written: ``check`` is what compares them with the bytes.
    """
    if not data.startswith(HEADER):
        raise ArchiveError("not a handoff archive (no 'handoff-archive v1' header)")
    out: list[tuple[str, str, bytes]] = []
    pos, n = len(HEADER), len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise ArchiveError(f"entry header at byte {pos} has no end")
        fields = data[pos:nl].split(b" ")
        if len(fields) != 4 or fields[0] != b"file" or not fields[3].isdigit():
            raise ArchiveError(f"bad entry header at byte {pos}")
        try:
            path, blob = fields[1].decode("ascii"), fields[2].decode("ascii")
        except UnicodeDecodeError:
            raise ArchiveError(f"bad entry header at byte {pos}") from None
        size = int(fields[3])
        start, end = nl + 1, nl + 1 + size
        if end >= n:
            raise ArchiveError(f"entry {path} is cut short")
        if data[end:end + 1] != b"\n":
            raise ArchiveError(f"entry {path} is not followed by a newline")
        if out and path <= out[-1][0]:
            raise ArchiveError(f"entry {path} is out of order or repeated")
        out.append((path, blob, data[start:end]))
        pos = end + 1
    return out


def check(seg_path: str, data: bytes) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """(the entries that hold up, problems): the name is the content's sha256 under the entries' month,
    every path is an event file path, every blob id is the bytes' own."""
    m = _SEGMENT_PATH.fullmatch(seg_path)
    if m is None:
        return [], [f"{seg_path} is not an archive segment path (archive/<YYYY-MM>/<sha256>.archive)"]
    try:
        entries = decode(data)
    except ArchiveError as exc:
        return [], [str(exc)]
    problems = []
    if hashlib.sha256(data).hexdigest() != m.group(2):
        problems.append("the name is not the sha256 of the content: the segment was changed")
    good = []
    for path, blob, body in entries:
        month = month_of(path)
        if month is None:
            problems.append(f"entry {path} is not an event file path")
        elif month != m.group(1):
            problems.append(f"entry {path} is not of the segment's month {m.group(1)}")
        elif blob_id(body) != blob:
            problems.append(f"entry {path}: its bytes do not match its blob id {blob}")
        else:
            good.append((path, blob, body))
    return good, problems


def vet(changes: list[Any], segments: dict[str, bytes]) -> tuple[list[Any], list[dict[str, Any]]]:
    """``verify``'s view of the archive: (the changes left for the append-only check, findings).

    ``changes`` are the range's ``checks.Change``s; ``segments`` every segment the head holds (path ->
    bytes).  A segment that fails ``check`` is an error when the range adds or changes it, a warning when
    it was already on the base.  An added segment that holds up is accepted; so is the deletion of an
    event file that some sound segment of the head holds with the deleted file's blob id (nothing was
    lost).  Any other deletion, and any change to an existing segment, is left for the append-only rule.
    """
    touched = {c.path for c in changes if c.status != "D"}
    findings: list[dict[str, Any]] = []
    held: dict[str, set[str]] = {}
    for path in sorted(segments):
        good, problems = check(path, segments[path])
        for problem in problems:
            findings.append({"severity": "error" if path in touched else "warning", "path": path,
                             "code": "archive_invalid", "message": problem + ("" if path in touched else
                                                                              " (already on the base)")})
        if not problems:
            for entry_path, blob, _body in good:
                held.setdefault(entry_path, set()).add(blob)
    left = []
    for c in changes:
        if c.path.startswith(ROOT + "/") and c.status == "A":
            if not is_segment_path(c.path):
                findings.append({"severity": "error", "path": c.path, "code": "archive_invalid",
                                 "message": "not an archive segment (archive/<YYYY-MM>/<sha256>.archive)"})
            continue  # (a segment's own problems were reported above)
        if c.status == "D" and c.old_blob in held.get(c.path, ()):
            continue  # sealed: the head's archive holds these exact bytes
        left.append(c)
    return left, findings
