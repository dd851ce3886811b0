"""Identifiers: time-sortable event ids, id grammars, deterministic direct-room ids.

Pure: randomness and time are passed in by the caller (see ``new_ulid``'s
arguments), so tests can pin them.
"""
from __future__ import annotations

import re
from typing import TypeGuard

from handoff.errors import HandoffError

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

# Grammars (AGH Network v0, current model).  Written ids must match these;
# every id also must be safe as a path component (checked by ``check_id``).
CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
PEER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}\Z")
THREAD_RE = re.compile(r"^thread_[a-z0-9][a-z0-9_-]{2,95}\Z")
DIRECT_RE = re.compile(r"^direct_[a-f0-9]{32}\Z")
WORK_RE = re.compile(r"^work_[a-zA-Z0-9_-]{1,64}\Z")
WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_-]{0,63}\Z")
SESSION_RE = re.compile(r"^sess_[a-z0-9_-]{1,64}\Z")
MESSAGE_RE = re.compile(r"^[a-z][a-z0-9]{0,7}_[a-z0-9_-]{1,100}\Z")
AGENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
# Lenient reading rule for ids found in files: no separators, no control chars.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]|^\.\.?\Z")

GRAMMARS = {
    "channel": (CHANNEL_RE, "lowercase letters, digits, '_' or '-', starting with a letter or digit (max 64)"),
    "peer": (PEER_RE, "lowercase letters, digits, '.', '_' or '-' (max 128), e.g. reviewer.sess_1"),
    "thread": (THREAD_RE, "'thread_' then 3-96 of [a-z0-9_-], e.g. thread_release_check"),
    "direct": (DIRECT_RE, "'direct_' then 32 hex digits (see `handoff directs resolve`)"),
    "work": (WORK_RE, "'work_' then 1-64 of [A-Za-z0-9_-], e.g. work_migration_check"),
    "workspace": (WORKSPACE_RE, "letters, digits, '_' or '-' (max 64), no dots or spaces"),
    "session": (SESSION_RE, "'sess_' then 1-64 of [a-z0-9_-]"),
    "message": (MESSAGE_RE, "a short lowercase prefix, '_', then [a-z0-9_-], e.g. msg_01jv8zk3"),
    "agent": (AGENT_RE, "lowercase letters, digits, '_' or '-' (max 64)"),
}


def check_id(kind: str, value: str | None) -> str:
    """Return ``value`` if it matches the grammar for ``kind``; raise a usage error otherwise."""
    regex, rule = GRAMMARS[kind]
    if not isinstance(value, str) or not regex.match(value) or _UNSAFE.search(value):
        shown = value if isinstance(value, str) else type(value).__name__
        raise HandoffError("invalid_id", f"invalid {kind} id {shown!r}: expected {rule}",
                           hint=f"pick a {kind} id that matches the grammar")
    return value


def is_safe(value: str) -> bool:
    """No path separator, control character (a trailing newline included), ``.`` or ``..``."""
    return not _UNSAFE.search(value)


def is_valid(kind: str, value: object) -> TypeGuard[str]:
    regex, _ = GRAMMARS[kind]
    return isinstance(value, str) and bool(regex.match(value)) and not _UNSAFE.search(value)


def encode_base32(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_ulid(ms: int, rand80: int) -> str:
    """A lowercase ULID: 10 chars of millisecond time, 16 chars of randomness."""
    return encode_base32(ms, 10) + encode_base32(rand80, 16)


_TO_PY32 = str.maketrans(CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


def ulid_ms(ulid: str) -> int:
    head = ulid[:10]
    if len(head) == 10 and all(ch in CROCKFORD for ch in head):
        return int(head.translate(_TO_PY32), 32)
    n = 0
    for ch in head:
        n = n * 32 + CROCKFORD.index(ch)
    return n


DIRECT_DOMAIN = b"agh-network/direct-room/v0"


def direct_id(workspace_id: str, channel: str, peer_a: str, peer_b: str) -> str:
    """AGH's deterministic room id: the same two peers in one channel always meet in one room."""
    if peer_a == peer_b:
        raise HandoffError("self_direct", f"a direct room needs two different peers, got {peer_a!r} twice",
                           hint="address another peer with --to")
    a, b = sorted((peer_a, peer_b))
    data = b"\x00".join([DIRECT_DOMAIN, workspace_id.encode(), channel.encode(), a.encode(), b.encode()])
    import hashlib  # (kept off the read commands' start-up: ~2 ms of OpenSSL set-up)
    return "direct_" + hashlib.sha256(data).hexdigest()[:32]
