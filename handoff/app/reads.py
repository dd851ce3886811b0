"""Reads of the reduced state that take more than one view call: work lists, handoff lists,
conversations (threads, direct rooms) and their messages.  Each returns what the command prints."""
from __future__ import annotations

from handoff.core import ids, work_ops
from handoff.errors import HandoffError
from handoff.store import clock
from handoff.views import payloads as views


def work_list(st: dict, state: str | None = None, channel: str | None = None, peer: str | None = None) -> list[dict]:
    """``handoff work list``: ``state`` is a work state or ``open``; ``peer``: only work it is in."""
    now = clock.now_ms()
    rows = []
    for w in sorted(st["work"].values(), key=lambda w: (w["opened_at"], w["work_id"])):
        if (state == "open" and work_ops.is_terminal(w)) or (state not in (None, "open") and w["state"] != state):
            continue
        if (channel and w["channel"] != channel) or (peer and peer not in (w["opened_by_peer_id"],
                                                                         w["target_peer_id"])):
            continue
        rows.append(views.work_payload(w, now, history=False))
    return rows


def handoffs(st: dict, to: str | None = None, status: str | None = None, channel: str | None = None) -> list[dict]:
    """``handoff list``: work opened with ``request``, oldest first."""
    if status not in (None, *views.HANDOFF_STATUSES):
        raise HandoffError("invalid_argument", f"unknown status {status!r}", hint=", ".join(views.HANDOFF_STATUSES))
    now = clock.now_ms()
    agents_of = {s["peer_id"]: s["agent"] for s in st["sessions"].values()}
    rows = []
    for w in sorted(st["work"].values(), key=lambda w: (w["opened_at"], w["work_id"])):
        if w.get("intent") != "handoff":
            continue
        h = views.handoff_view(w, now)
        if (status and h["status"] != status) or (channel and h["channel"] != channel):
            continue
        if to and to not in (h["to"], w["target_peer_id"], agents_of.get(w["target_peer_id"])):
            continue
        rows.append(h)
    return rows


def messages(st: dict, channel: str, *, thread: str | None = None, direct: str | None = None,
             kind: str | None = None, work: str | None = None, limit: int | None = None) -> list[dict]:
    """A thread's or direct room's messages in event order."""
    if (thread is None) == (direct is None):
        raise HandoffError("invalid_argument", "give a thread or a direct room", hint="thread=... or direct=...")
    from handoff.index import for_container
    st = for_container(st, channel=channel, thread_id=thread, direct_id=direct)
    msgs = views.container_messages(st, channel=channel, thread_id=thread, direct_id=direct)
    msgs = [m for m in msgs if (kind is None or m["kind"] == kind) and (work is None or m.get("work_id") == work)]
    return msgs[-limit:] if limit else msgs


def directs(st: dict, channel: str, peer: str | None = None) -> list[dict]:
    """A channel's direct rooms, most recent first (only ``peer``'s with a peer)."""
    rooms = [b for b in st["directs"].values() if b["channel"] == channel]
    if peer:
        rooms = [b for b in rooms if peer in (b["peer_a"], b["peer_b"])]
    rooms.sort(key=lambda b: (b["last_activity_at"], b["direct_id"]), reverse=True)
    return [views.direct_summary(b) for b in rooms]


def thread_box(st: dict, channel: str, thread: str) -> dict:
    """A public thread of ``channel`` (refused when there is none)."""
    ids.check_id("channel", channel)
    ids.check_id("thread", thread)
    box = st["threads"].get(f"{channel}/{thread}")
    if box is None:
        raise HandoffError("conversation_not_found", f"thread {thread} not found in #{channel}",
                           hint=f"list threads with `handoff threads list --channel {channel}`")
    return box


def direct_box(st: dict, channel: str, direct: str) -> dict:
    """A direct room of ``channel`` (refused when there is none)."""
    ids.check_id("channel", channel)
    ids.check_id("direct", direct)
    box = st["directs"].get(direct)
    if box is None or box["channel"] != channel:
        raise HandoffError("conversation_not_found", f"direct room {direct} not found in #{channel}",
                           hint="find it with `handoff directs resolve --channel C --session S --peer P`")
    return box


def resolve_direct(st: dict, workspace_id: str, channel: str, me: dict, peer: str) -> dict:
    """``handoff directs resolve``: the deterministic room id for session ``me`` and ``peer``."""
    ids.check_id("peer", peer)
    room = ids.direct_id(workspace_id, channel, me["peer_id"], peer)
    box = st["directs"].get(room)
    a, b = sorted((me["peer_id"], peer))
    return {"direct_id": room, "channel": channel, "peer_a": a, "peer_b": b, "exists": box is not None,
            "message_count": box["message_count"] if box else 0}
