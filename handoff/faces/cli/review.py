"""Review and exchange: ``verify``, ``report``, ``sync`` and ``hooks install|uninstall``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from handoff.errors import EXIT_VERIFY, HandoffError
from handoff.views import render

from .apps import app
from .common import Cx, command

hooks_app = typer.Typer(help="Git hooks that run `handoff verify --staged` before each commit.",
                        no_args_is_help=True)
app.add_typer(hooks_app, name="hooks")

BaseOpt = Annotated[Optional[str], typer.Option("--base", help="compare with the merge base of REV "
                                                               "(default: the default branch, e.g. origin/main)")]
AgainstOpt = Annotated[Optional[str], typer.Option("--against", help="compare with REV itself, not the merge base: "
                                                                     "every event REV holds must still be there "
                                                                     "(a push; catches force-pushes)")]
RevOpt = Annotated[Optional[str], typer.Option("--rev", help="check this revision instead of HEAD (no checkout)")]


# ------------------------------------------------------------------ verify


BASE_NOTES = {  # (why the base is what it is, when no --base/--against chose it)
    "none": "no --base given and no default branch to compare with (looked for origin/HEAD, origin/main, "
            "origin/master, main, master other than this branch): every file counts as new; pass --base REV",
    "default_branch": "no --base given: the merge base with {against}, the default branch",
    "no_commit": "no commit yet: nothing committed to compare",
}


def _verify_human(r: dict) -> str:
    base = "the empty tree" if r["against"] is None else f"{r['against']} ({r['base'][:12]})"
    if r.get("exact"):
        base += " itself"
    head = r["head"] if r["head"] == "index" else r["head"][:12]
    verdict = "OK" if r["ok"] else "FAILED"
    identity = r.get("identity_status") or ("passed" if r["identity"] else "off")
    lines = [f"handoff verify: {verdict}: {r['files']} event file(s), {r['new_files']} new since {base}, "
             f"head {head}: {r['errors']} error(s), {r['warnings']} warning(s), identity: "
             + (identity if identity != "off" else "off (not configured)")]
    if r.get("base_source") in BASE_NOTES:
        lines.append("  base: " + BASE_NOTES[r["base_source"]].format(against=r["against"]))
    if r.get("commit_pending"):
        lines.append(f"  note: {r['commit_pending']} batched event file(s) not committed yet, so not checked: "
                     "run `handoff flush`")
    for f in r["findings"]:
        lines.append(f"{f['severity']:<8} {render.safe(f['path'])}: {f['code']}: {render.safe(f['message'])}")
    return "\n".join(lines)


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github_annotations(r: dict) -> str:
    """GitHub Actions workflow commands: one ::error / ::warning per finding, then a notice."""
    lines = []
    for f in r["findings"]:
        level = "error" if f["severity"] == "error" else "warning"
        title = _gh_escape(f"handoff verify: {f['code']}", prop=True)
        # (findings are about whole files: line 1 anchors the annotation in the PR's diff view)
        lines.append(f"::{level} file={_gh_escape(f['path'], prop=True)},line=1,title={title}::"
                     f"{_gh_escape(render.safe(f['message']))}")
    summary = f"handoff verify {'passed' if r['ok'] else 'failed'}: {r['new_files']} new event file(s), " \
              f"{r['errors']} error(s), {r['warnings']} warning(s)"
    lines.append(f"::{'notice' if r['ok'] else 'error'}::{summary}")
    return "\n".join(lines)


def github_error(err: HandoffError) -> str:
    """A refusal before any check ran (a base that is not there, bad arguments) as one ::error:: line."""
    title = _gh_escape(f"handoff verify: {err.reason_code}", prop=True)
    text = err.message + (f" ({err.hint})" if err.hint else "")
    return f"::error title={title}::{_gh_escape(render.safe(text))}"


@command(app, "verify")
def verify(cx: Cx, base: BaseOpt = None, against: AgainstOpt = None, rev: RevOpt = None,
           staged: Annotated[bool, typer.Option("--staged", help="check the index (for a pre-commit hook)")] = False,
           all_: Annotated[bool, typer.Option("--all", help="treat every file as new (full audit, no base)")] = False,
           remotes: Annotated[bool, typer.Option("--remotes/--no-remotes",
                                                 help="use events on remote-tracking refs as context")] = True,
           fmt: Annotated[Optional[str], typer.Option("--format", help="github: workflow annotations")] = None):
    """The reviewer's and CI's check: append-only, schema, lifecycle, identity. Exit 5 on failure.

    --base REV (pull requests) compares with the merge base of REV and HEAD; --against REV (pushes)
    compares with REV itself, so events REV holds and the new tip lacks (a force-push) are deleted ones.

    \b
    Examples:
      handoff verify --base origin/main
      handoff verify --against "$BEFORE"
      handoff verify --staged
    """
    if fmt not in (None, "github"):
        raise HandoffError("usage", f"unknown --format {fmt!r}", hint="the only format is github; see also -o")
    try:
        r = cx.hf.verify(base=base, against=against, rev=rev, staged=staged, all=all_, remotes=remotes)
    except HandoffError as err:
        if fmt == "github":
            sys.stdout.write(github_error(err) + "\n")
        raise
    if fmt == "github":
        sys.stdout.write(github_annotations(r) + "\n")
    else:
        cx.emit(r, _verify_human)
    if not r["ok"]:
        raise typer.Exit(EXIT_VERIFY)


# ------------------------------------------------------------------ report


@command(app, "report")
def report(cx: Cx, base: BaseOpt = None, rev: RevOpt = None,
           markdown: Annotated[bool, typer.Option("--markdown", help="Markdown for a PR description")] = False,
           html: Annotated[Optional[Path], typer.Option("--html", help="write one self-contained HTML page here")] = None):
    """What this branch opened, answered and closed: handoffs, work units, threads.

    \b
    Examples:
      handoff report --markdown --base origin/main
      handoff report --html report.html
    """
    from handoff.views import report as rep_mod
    data = cx.hf.report(base=base, rev=rev, html=html, markdown=markdown)
    if data.get("commit_pending") and not cx.machine:
        cx.note(f"note: {data['commit_pending']} batched event file(s) are not committed yet and not in this "
                "report: run `handoff flush`")
    if markdown and not cx.machine:
        sys.stdout.write(data["markdown"])
        return
    cx.emit(data, lambda d: rep_mod.markdown(d) + (f"\nwrote {d['html']}" if d.get("html") else ""))


# -------------------------------------------------------------------- sync


def _sync_human(r: dict) -> str:
    push = r.get("push") or ""
    extra = f", integrated by {r['integrated']}" if r.get("integrated") else ""
    extra += f" ({r['integrated_note']})" if r.get("integrated_note") else ""
    seen = (f"; {r['events_from_other_branches']} event(s) visible from other branches"
            if r.get("events_from_other_branches") is not None else "")
    flushed = r.get("flushed") or {}
    first = f"committed {flushed['events']} batched event file(s) first; " if flushed.get("committed") else ""
    return f"sync {r['remote']}: {render.safe(r.get('branch') or '-')}: {first}{push}{extra}; fetched{seen}"


def _progress_text(ev: dict) -> str:
    """``push: writing 40% (2/5), 1.2 KiB | 1.2 MiB/s`` -- one of git's transfer progress reports."""
    stage = ev["stage"].replace("_", " ")
    count = (f"{ev['percent']}% ({ev['current']}/{ev['total']})" if ev["percent"] is not None
             else str(ev["current"] if ev["current"] is not None else ""))
    tail = ", ".join(x for x in (ev["message"], "done" if ev["done"] else "") if x)
    return f"{ev['op']}: {stage} {count}" + (f", {tail}" if tail else "")


def _progress_sink(cx: Cx, want: Optional[bool]):
    """Where git's transfer progress goes: JSON lines on stdout (-o jsonl --progress), else lines on stderr
    (--progress, or a human run whose stderr is a terminal: rewritten in place there); None: nowhere."""
    if want is False:
        return None, lambda: None
    if cx.output == "jsonl" and want:
        import json

        def to_stdout(ev: dict) -> None:
            sys.stdout.write(json.dumps({"progress": ev}, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return to_stdout, lambda: None
    tty = sys.stderr.isatty()
    if not want and (cx.machine or not tty):
        return None, lambda: None
    open_line: list[bool] = [False]
    quarter: dict[tuple, int] = {}

    def to_stderr(ev: dict) -> None:
        text = render.safe(_progress_text(ev))
        if tty:
            sys.stderr.write("\r" + text + "\x1b[K" + ("\n" if ev["done"] else ""))
            open_line[0] = not ev["done"]
        else:  # a log: each stage at 25, 50 and 75 % and at its end, not every update
            key, q = (ev["op"], ev["stage"]), (ev["percent"] // 25 if ev["percent"] is not None else 0)
            if not ev["done"] and (q in (0, 4) or quarter.get(key) == q):
                return
            quarter[key] = q
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close() -> None:
        if open_line[0]:
            sys.stderr.write("\n")
            open_line[0] = False
    return to_stderr, close


@command(app, "sync")
def sync(cx: Cx,
         remote: Annotated[str, typer.Option("--remote", help="git remote")] = "origin",
         push: Annotated[bool, typer.Option("--push/--no-push", help="push the current branch")] = True,
         integrate: Annotated[Optional[str], typer.Option("--integrate", help="rebase or merge when the remote "
                                                                               "branch moved (default: config)")] = None,
         every: Annotated[Optional[str], typer.Option("--every", help="repeat: 30s, 5m ... until interrupted")] = None,
         count: Annotated[Optional[int], typer.Option("--count", help="with --every: stop after N rounds")] = None,
         progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="report git's push and "
                             "fetch progress on stderr (default: when stderr is a terminal and -o human); with "
                             "-o jsonl, as {\"progress\": ...} lines on stdout")] = None):
    """Push this branch's events and fetch everyone's; other branches' events become visible here.

    Progress (--progress) is git's own, one report per stage update: on stderr as
    "push: writing 100% (3/3), done"; with -o jsonl each is a line before the result:

    \b
      {"progress": {"op": "push"|"fetch", "stage", "current", "total", "percent",
                    "done", "message"}}

    \b
    Examples:
      handoff sync
      handoff sync --every 30s -o jsonl
    """
    sink, close = _progress_sink(cx, progress)
    try:
        if every is None:
            r = cx.hf.sync(remote=remote, push=push, integrate=integrate, progress=sink)
            close()
            return cx.emit(r, _sync_human)
        failed = False
        for rounds, r in cx.hf.sync_rounds(every, count, remote=remote, push=push, integrate=integrate,
                                           progress=sink):
            close()
            failed = isinstance(r, HandoffError)
            if isinstance(r, HandoffError):
                line = {"round": rounds, **r.to_json()}
                cx.note(f"sync round {rounds}: {r.message}" + (f" ({r.hint})" if r.hint else ""))
                if not cx.machine:
                    continue
            else:
                line = r
            if cx.output in ("json", "jsonl"):
                import json
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                cx.emit(line, _sync_human)
    finally:
        close()
    if failed:
        raise typer.Exit(1)


# ------------------------------------------------------------------- hooks


@command(hooks_app, "install")
def hooks_install(cx: Cx):
    """Install a git pre-commit hook running `handoff verify --staged` (keeps and chains an existing hook).

    \b
    Example:
      handoff hooks install
    """
    r = cx.hf.hooks(install=True)
    cx.emit(r, lambda d: f"{'updated' if d['updated'] else 'installed'} {d['hook']}"
            + (f"\n  runs the previous hook first: {d['chained']}" if d["chained"] else "")
            + (f"\n  note: {d['note']}" if d.get("note") else ""))


@command(hooks_app, "uninstall")
def hooks_uninstall(cx: Cx):
    """Remove the handoff pre-commit hook (and restore a hook it chained).

    \b
    Example:
      handoff hooks uninstall
    """
    r = cx.hf.hooks(install=False)
    cx.emit(r, lambda d: ("removed " + d["hook"] + (" (restored the previous hook)" if d["restored"] else ""))
            if d["removed"] else "no handoff hook installed")
