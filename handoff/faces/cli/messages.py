"""``send``, ``inbox``, ``threads ...`` and ``directs ...``."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from handoff.core import arguments
from handoff.errors import HandoffError
from handoff.views import render

from .apps import app, directs_app, threads_app
from .common import Cx, IdOpt, SessionOpt, command

MAX_ARG_FILE = 1024 * 1024  # what ``@file`` / ``@-`` reads at most (a body is far smaller: ops.MAX_BODY_BYTES)


def read_arg(value: str | None) -> str | None:
    """``@file`` reads the file; ``@-`` reads stdin; anything else is the value itself.

    At most ``MAX_ARG_FILE`` bytes are read (``@/dev/zero`` must not fill memory): larger is refused,
    with the file's real size when it has one."""
    if value is None or not value.startswith("@"):
        return value
    import sys
    name = "stdin" if value == "@-" else value[1:]
    try:
        if value == "@-":
            data = sys.stdin.buffer.read(MAX_ARG_FILE + 1) if hasattr(sys.stdin, "buffer") else \
                sys.stdin.read(MAX_ARG_FILE + 1).encode("utf-8", "surrogateescape")
            size = None
        else:
            import fcntl
            import os
            import stat
            fd = os.open(value[1:], os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO nobody writes to: no hang at open)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            with open(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                size = st.st_size if stat.S_ISREG(st.st_mode) else None
                data = b"" if size is not None and size > MAX_ARG_FILE else fh.read(MAX_ARG_FILE + 1)
        if (size or 0) > MAX_ARG_FILE or len(data) > MAX_ARG_FILE:
            shown = f"{size / 1048576:.1f} MiB ({size} bytes)" if size else "more than 1 MiB"
            raise HandoffError("argument_too_large", f"{name} is {shown}: an argument read with @ may be "
                               f"at most 1 MiB ({MAX_ARG_FILE} bytes)",
                               hint="pass a smaller file; put large content in a file in the repo and reference "
                                    "its path")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HandoffError("invalid_argument", f"cannot read {name}: {exc}", hint="check the file path") from None


def message_human(d: dict) -> str:
    where = d.get("thread_id") or d.get("direct_id")
    lines = [f"{d['id']}  {d['kind']} in #{d['channel']}/{where}" + (f" -> {d['to']}" if d.get("to") else "")]
    if d.get("work_id"):
        lines.append(f"  work {d['work_id']}")
    if d.get("replayed"):
        lines.append("  (already written: idempotent retry, nothing new)")
    elif d.get("committed"):
        lines.append(f"  committed {d['commit'][:12] if d.get('commit') else ''}")
    elif d.get("commit_skipped"):
        lines.append(f"  not committed: {d['commit_skipped']}")
    elif d.get("commit_pending"):
        lines.append("  batched: committed with the next ones (or `handoff flush`)")
    return "\n".join(lines)


@command(app, "send", writes=True)
def send(cx: Cx,
         session: SessionOpt = None,
         # Typer's `...` default marks a required option; it is never the value the command sees
         channel: Annotated[str, typer.Option("--channel", "-c", help="channel")] = ...,  # type: ignore[assignment]
         kind: Annotated[str, typer.Option("--kind", "-k", help="say, capability, receipt, trace, greet, whois "
                                                                 "(alias: request)")] = "say",
         body: Annotated[Optional[str], typer.Option("--body", "-b", help="JSON object, @file or @- for stdin")] = None,
         text: Annotated[Optional[str], typer.Option("--text", "-m", help="shorthand for a say body's text")] = None,
         surface: Annotated[Optional[str], typer.Option("--surface", help="thread or direct")] = None,
         thread: Annotated[Optional[str], typer.Option("--thread", "-t", help="thread id (thread_...)")] = None,
         direct: Annotated[Optional[str], typer.Option("--direct", help="direct room id (direct_...)")] = None,
         to: Annotated[Optional[str], typer.Option("--to", help="target peer id")] = None,
         work: Annotated[Optional[str], typer.Option("--work", "-w", help="work id (work_...)")] = None,
         reply_to: Annotated[Optional[str], typer.Option("--reply-to", help="message id answered")] = None,
         trace_id: Annotated[Optional[str], typer.Option("--trace-id", help="end-to-end flow id")] = None,
         causation_id: Annotated[Optional[str], typer.Option("--causation-id", help="immediate causal parent")] = None,
         expires_at: Annotated[Optional[str], typer.Option("--expires-at", help="RFC 3339, unix seconds or 30m")] = None,
         interaction_id: Annotated[Optional[str], typer.Option("--interaction-id",
                                                               help="legacy alias: becomes trace_id")] = None,
         ext: Annotated[Optional[str], typer.Option("--ext", help="JSON object of namespaced extension keys")] = None,
         given_id: IdOpt = None):
    """Write one envelope into a public thread or a direct room.

    \b
    Example:
      handoff send --session "$S" --channel builders --surface thread --thread thread_release_check \\
        --kind say --to patch-worker.session-19 --work work_migration_check \\
        --body '{"text":"Run the smoke test"}'
    """
    raw = read_arg(body)
    payload = arguments.parse_body(raw, default={"text": text} if text else None)
    if text and raw is not None:
        payload.setdefault("text", text)
    ext_obj = arguments.parse_body(read_arg(ext)) if ext else None
    data = cx.me(session).send(channel, payload, kind=kind, surface=surface, thread=thread, direct=direct, to=to,
                               work=work, reply_to=reply_to, trace_id=trace_id, causation_id=causation_id,
                               expires_at=expires_at, interaction_id=interaction_id, ext=ext_obj, id=given_id)
    cx.emit(data, message_human)


@command(app, "inbox", writes=False)
def inbox(cx: Cx, session: SessionOpt = None,
          all_: Annotated[bool, typer.Option("--all", help="also answered, acknowledged and expired entries")] = False,
          ack: Annotated[Optional[list[str]], typer.Option("--ack", help="record a local acknowledgement "
                                                                          "(repeatable; 'all' for every entry)")] = None):
    """What waits for a session. Reading never changes anything; --ack records a local acknowledgement.

    \b
    Example:
      handoff inbox --session sess_receiver -o json
    """
    data = cx.me(session).inbox(all=all_, ack=ack)
    cx.emit(data, _inbox_human)


def _inbox_human(d: dict) -> str:
    from handoff.views import inbox as inbox_view
    return inbox_view.human(d)


ChannelOpt = Annotated[str, typer.Option("--channel", "-c", help="channel")]


@command(threads_app, "list")
def threads_list(cx: Cx, channel: ChannelOpt):
    """Public threads of a channel, most recent first.

    \b
    Example:
      handoff threads list --channel builders -o json
    """
    data = {"channel": channel, "threads": cx.hf.threads(channel)}
    cx.emit(data, lambda d: render.table(d["threads"], ["thread_id", "message_count", "participant_count",
                                                        "open_work_count", "last_activity_at",
                                                        "last_message_preview"]))


@command(threads_app, "show")
def threads_show(cx: Cx, channel: ChannelOpt,
                 thread: Annotated[str, typer.Option("--thread", "-t", help="thread id")]):
    """One thread's summary.

    \b
    Example:
      handoff threads show --channel builders --thread thread_release_check -o json
    """
    cx.emit(cx.hf.thread(channel, thread))


@command(threads_app, "messages")
def threads_messages(cx: Cx, channel: ChannelOpt,
                     thread: Annotated[str, typer.Option("--thread", "-t", help="thread id")],
                     kind: Annotated[Optional[str], typer.Option("--kind", help="only this kind")] = None,
                     work: Annotated[Optional[str], typer.Option("--work", help="only this work id")] = None,
                     limit: Annotated[Optional[int], typer.Option("--limit", help="only the last N")] = None):
    """A thread's messages in event order (-o jsonl for a stream).

    \b
    Example:
      handoff threads messages --channel builders --thread thread_release_check -o jsonl
    """
    msgs = cx.hf.messages(channel, thread=thread, kind=kind, work=work, limit=limit, known=True)
    cx.emit({"channel": channel, "thread_id": thread, "messages": msgs}, _messages_human)


def _messages_human(d: dict) -> str:
    if not d["messages"]:
        return "(no messages)"
    out = []
    for m in d["messages"]:
        body = m.get("body") or {}
        what = body.get("text") or body.get("message") or body.get("status") or body.get("state") or ""
        to = f" -> {render.safe(m['to'])}" if m.get("to") else ""
        out.append(f"{m['ts']}  {render.safe(m['from'])}{to}  {m['kind']}"
                   + (f" [{m['work_id']}]" if m.get("work_id") else "") + (f" REFUSED {m['refused']}" if m.get("refused") else ""))
        out.append(f"    {render.one_line(what)}")
    return "\n".join(out)


@command(directs_app, "list")
def directs_list(cx: Cx, channel: ChannelOpt, session: SessionOpt = None):
    """Direct rooms of a channel (only a session's own rooms with --session).

    \b
    Example:
      handoff directs list --channel builders -o json
    """
    data = {"channel": channel, "directs": cx.hf.directs(channel, session)}
    cx.emit(data, lambda d: render.table(d["directs"], ["direct_id", "peer_a", "peer_b", "message_count",
                                                        "open_work_count", "last_activity_at"]))


DirectOpt = Annotated[str, typer.Option("--direct", "-d", help="direct room id")]


@command(directs_app, "show")
def directs_show(cx: Cx, channel: ChannelOpt, direct: DirectOpt):
    """One direct room's summary.

    \b
    Example:
      handoff directs show --channel builders --direct direct_0123... -o json
    """
    cx.emit(cx.hf.direct(channel, direct))


@command(directs_app, "messages")
def directs_messages(cx: Cx, channel: ChannelOpt, direct: DirectOpt,
                     kind: Annotated[Optional[str], typer.Option("--kind")] = None,
                     work: Annotated[Optional[str], typer.Option("--work")] = None,
                     limit: Annotated[Optional[int], typer.Option("--limit")] = None):
    """A direct room's messages in event order.

    \b
    Example:
      handoff directs messages --channel builders --direct direct_0123... -o jsonl
    """
    msgs = cx.hf.messages(channel, direct=direct, kind=kind, work=work, limit=limit, known=True)
    cx.emit({"channel": channel, "direct_id": direct, "messages": msgs}, _messages_human)


@command(directs_app, "resolve")
def directs_resolve(cx: Cx, channel: ChannelOpt,
                    peer: Annotated[str, typer.Option("--peer", "-p", help="the other peer")],
                    session: SessionOpt = None):
    """The deterministic room id for this session and a peer (writes nothing).

    \b
    Example:
      handoff directs resolve --channel builders --session "$S" --peer patch-worker.session-19
    """
    cx.emit(cx.me(session).resolve_direct(channel, peer), lambda d: d["direct_id"])
