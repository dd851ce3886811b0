"""Retries of a write: ``--id`` as an event id or an idempotency key, and finding the original.

A retry with the same id or key returns what the first attempt wrote (a ``_replay`` draft); the same
key with other content is refused.
"""
from __future__ import annotations

import re
from typing import Any

from handoff.errors import HandoffError


def replay_or_none(state: dict[str, Any], draft: dict[str, Any], key: str | None, fields: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    """A retry with the same id/key returns the original; the same key with other content is refused.

    ``fields`` (default: every semantic field) are the ones compared."""
    if not key:
        return None
    msgs = state["messages"]
    m: dict[str, Any]
    for m in (msgs.with_key(key) if hasattr(msgs, "with_key") else msgs):
        mkey = (m.get("ext") or {}).get("idempotency_key")
        if m["id"] == key or (mkey == key and m["from"] == draft["from"]):
            if all(m.get(k) == draft.get(k) for k in (fields or SEMANTIC)):
                return m
            raise HandoffError("id_conflict", f"{key!r} was already used for a different message ({m['id']})",
                               hint="use a new --idempotency-key for new content; re-send identical content to retry")
    return None


def find_prior(state: dict[str, Any], key: str, sender: str) -> dict[str, Any] | None:
    m: dict[str, Any]
    for m in state["messages"]:
        if m["id"] == key or ((m.get("ext") or {}).get("idempotency_key") == key and m["from"] == sender):
            return m
    return None


SEMANTIC = ("kind", "channel", "surface", "thread_id", "direct_id", "from", "to", "work_id", "reply_to", "trace_id",
            "causation_id", "body")


# A verb's addressing (to, reply_to, causation) is derived from the work's history, which moves on
# between an attempt and its retry; what the user asked for is the kind, the unit and the body.
VERB_FIELDS = ("kind", "channel", "from", "work_id", "body")


def apply_idempotency(draft: dict[str, Any], given_id: str | None) -> str | None:
    """``--id``: a full event id is used as the id; anything else is kept as an idempotency key."""
    if given_id is None:
        return None
    if re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", given_id):
        draft["id"] = given_id
    else:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", given_id):
            raise HandoffError("invalid_id", f"--idempotency-key {given_id!r} is not a valid idempotency key",
                               hint="use letters, digits, '.', '_', ':' or '-'")
        draft["ext"] = dict(draft.get("ext") or {}, idempotency_key=given_id)
    return given_id


def sub_key(draft: dict[str, Any], given_id: str, n: int) -> str:
    key = f"{given_id}:{n}"
    draft["ext"] = dict(draft.get("ext") or {}, idempotency_key=key)
    return key
