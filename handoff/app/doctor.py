"""``handoff doctor``: check the set-up and say how to fix each problem.

Each check returns ``{"check", "status": ok|warn|fail|skip, "message", "fix"}``.
``fail`` means handoff cannot work as configured; ``warn`` means something a
user would want to know (a missed notification, an uncommitted event).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from handoff.core import model
from handoff.errors import HandoffError
from handoff.git import cmd as gitcmd
from handoff.store import clock
from handoff.views import render

MIN_WATCHES = 8192
SKEW_WARN_MS = 60 * 1000


def _c(check: str, status: str, message: str, fix: str = "") -> dict:
    return {"check": check, "status": status, "message": message, "fix": fix}


def run(repo: str | None, session: str | None) -> dict:
    checks: list[dict] = []
    try:
        paths = gitcmd.discover(repo)
    except HandoffError as err:
        checks.append(_c("git repository", "fail", err.message, err.hint or "run inside a git repository"))
        return _result(checks)
    checks.append(check_identity(paths))
    checks.append(check_symlinks(paths.worktree))
    ws, cfg_checks = check_workspace(repo)
    checks += cfg_checks
    state = None
    if ws is not None:
        checks.append(check_cache(ws))
        arch = check_archive(ws)
        if arch is not None:
            checks.append(arch)
        try:
            state = ws.state()
        except HandoffError as err:
            checks.append(_c("events", "fail", f"cannot read the events: {err.message}", err.hint))
    if state is not None:
        checks.append(check_events(state))
        checks.append(check_uncommitted(ws))
        checks.append(check_clock(state))
        checks.append(check_session(state, session))
        checks.append(check_watcher(ws, state, session))
    checks += check_hooks(paths.worktree)
    checks.append(check_inotify(paths.worktree / ".handoffs"))
    return _result(checks)


def _result(checks: list[dict]) -> dict:
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("ok", "warn", "fail", "skip")}
    return {"ok": counts["fail"] == 0, "version": version(), "counts": counts, "checks": checks}


def version() -> str:
    """``handoff.__version__``: the layers keep every module from importing the entry package, but it is
    always loaded before any of its modules, so it is read from there."""
    return str(sys.modules["handoff"].__version__)


# ------------------------------------------------------------------ checks


def check_identity(paths) -> dict:
    proc = gitcmd.run(paths.worktree, "var", "GIT_COMMITTER_IDENT", check=False)
    if proc.returncode != 0:
        return _c("git identity", "fail", "git has no user name/email here, so handoff cannot commit events",
                  'git config user.name "Your Agent" && git config user.email agent@example.com')
    ident = proc.stdout.decode("utf-8", "replace").rsplit(">", 1)[0] + ">"
    return _c("git identity", "ok", f"commits are made as {ident.strip()}")


def find_symlinks(worktree: Path) -> list[tuple[str, str]]:
    """(repo-relative path, target) of ``.handoffs`` and of everything under it that is a symlink (not followed)."""
    top = worktree / ".handoffs"
    if top.is_symlink():
        return [(".handoffs", _readlink(top))]
    out = []
    stack = [str(top)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:  # d_type: no stat per file
                if entry.is_symlink():
                    out.append((os.path.relpath(entry.path, worktree), _readlink(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return sorted(out)


def _readlink(path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def check_symlinks(worktree: Path) -> dict:
    found = find_symlinks(worktree)
    if not found:
        return _c("symlinks", "ok", "no symlink in or as .handoffs/")
    shown = "; ".join(f"{rel} -> {target}" for rel, target in found[:10])
    more = f" (+{len(found) - 10} more)" if len(found) > 10 else ""
    return _c("symlinks", "fail", f"{len(found)} symlink(s), which handoff never reads or writes through: "
              f"{shown}{more}", "remove each link (`rm PATH`, plus `git rm --cached PATH` if it is committed) "
              "and put a real directory or file there (copy in what it points to if those are your events); "
              "`handoff verify` fails a branch that adds one")


def check_workspace(repo: str | None):
    from handoff.app.workspace import Workspace
    try:
        ws = Workspace(repo)
    except HandoffError as err:
        return None, [_c(".handoffs/", "fail", err.message, err.hint)]
    out = []
    try:
        cfg = ws.config
    except HandoffError as err:
        return None, [_c(".handoffs/config.yaml", "fail", err.message, err.hint)]
    problems = []
    if not isinstance(cfg, dict):
        problems.append("is not a mapping")
    else:
        from handoff.core import ids
        if not ids.is_valid("workspace", cfg.get("workspace_id")):
            problems.append(f"workspace_id {cfg.get('workspace_id')!r} is not a valid id")
        from handoff.core.config import batch_settings, commit_word
        if "commit" in cfg and commit_word(cfg["commit"]) is None:
            problems.append(f"commit: {cfg.get('commit')!r} is not auto, batch or off")
        problems += batch_settings(cfg)[2]
        if cfg.get("format") not in (None, model.PROTOCOL):
            problems.append(f"format {cfg.get('format')!r} is not {model.PROTOCOL}")
    if problems:
        out.append(_c(".handoffs/config.yaml", "fail", "; ".join(problems), "edit .handoffs/config.yaml "
                      "(compare with a fresh `handoff init` in a scratch repo)"))
    else:
        mode = ws.commit_mode()
        if mode == "batch":
            from handoff.core.config import batch_settings
            mode += f" (window {batch_settings(cfg)[0] / 1000:g}s)"
        out.append(_c(".handoffs/config.yaml", "ok", f"workspace {ws.workspace_id}, commit {mode}"))
    missing = [n for n in (".gitattributes", ".gitignore", "README.md") if not (ws.root / n).exists()]
    if not (ws.root / "events").is_dir():
        missing.append("events/")
    if missing:
        out.append(_c(".handoffs/ layout", "warn", f"missing {', '.join(missing)}",
                      "run `handoff init` (it only adds what is missing, never overwrites)"))
    else:
        out.append(_c(".handoffs/ layout", "ok", "config, README, .gitattributes, .gitignore and events/ present"))
    return ws, out


def check_cache(ws) -> dict:
    from handoff import index
    cache = ws.paths.shared / "cache"
    bad = index.damaged_files(cache)
    if bad:
        listed = "; ".join(f"{name}: {why}" for name, why in bad)
        return _c("cache", "warn", f"cannot read {listed}: it is only a cache, rebuilt from the event files "
                  "by the next command (this one included)",
                  f"nothing to do; if it happens again, check the disk under {cache}")
    return _c("cache", "ok", "the cache files open")


def check_archive(ws) -> dict | None:
    """Every archive segment (``handoff compact``) holds up: a bad one's events are not read."""
    from handoff.core import archive
    from handoff.store import archive as store_archive
    segs = store_archive.list_segments(ws.root)
    if not segs:
        return None
    bad, entries = [], 0
    for rel, _st in segs:
        try:
            good, problems = archive.check(f"{ws.root.name}/{rel}", store_archive.read_segment(ws.root, rel))
        except OSError as exc:
            good, problems = [], [str(exc)]
        entries += len(good)
        bad += [f"{rel}: {p}" for p in problems]
    if bad:
        return _c("archive", "fail", f"{len(bad)} problem(s) in archive segments (their events are not read); "
                  f"first: {bad[0]}", "restore the segment from git (`git checkout -- .handoffs/archive`); "
                  "`handoff verify` names every problem")
    return _c("archive", "ok", f"{len(segs)} segment(s), {entries} sealed events")


def check_events(state: dict) -> dict:
    diags = state["diagnostics"]
    if not diags:
        return _c("events", "ok", f"{state['event_count']} events, no diagnostics")
    codes: dict[str, int] = {}
    for d in diags:
        codes[d["reason_code"]] = codes.get(d["reason_code"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(codes.items()))
    first = diags[0]
    status = "fail" if any(d["reason_code"] == "malformed" for d in diags) else "warn"
    return _c("events", status, f"{len(diags)} diagnostics ({summary}); first: {first['path']}: {first['message']}",
              "run `handoff verify` to see each; refused events stay on disk and are ignored, "
              "malformed files need fixing by whoever wrote them")


def check_uncommitted(ws) -> dict:
    from handoff.app.gitstate import uncommitted_events
    n = uncommitted_events(ws)
    pending = ws.paths.local / "pending"
    markers = len(list(pending.iterdir())) if pending.is_dir() else 0
    if not n and not markers:
        return _c("uncommitted events", "ok", "every event file is committed")
    what = f"{n} event files not committed" + (f", {markers} pending markers" if markers else "")
    by_hand = "`git add .handoffs/events && git commit -m 'handoff events'`"
    if markers and markers >= n and ws.commit_mode() == "batch":
        from handoff.app import batching
        age = batching.oldest_age_s(ws) or 0.0
        if age * 1000 <= batching.settings(ws)[0] + batching.GRACE_S * 1000:
            return _c("uncommitted events", "ok", f"{what}: batched (commit: batch), the oldest {age:.0f}s ago; "
                      "the background flusher or the next write commits them")
        return _c("uncommitted events", "warn", f"{what}: batched {age:.0f}s ago and still not committed",
                  "run `handoff flush` (see its output for why a commit could not be made)")
    if not ws.commit_default():
        fix = f"commit: off: {by_hand}"
    elif markers and markers >= n:
        fix = f"an interrupted commit left them: the next handoff write commits them, or {by_hand}"
    elif markers:
        fix = (f"the next handoff write commits the {markers} an interrupted commit left; the others were written "
               f"with --no-commit or taken out of a commit by hand: {by_hand}")
    else:
        fix = f"written with --no-commit or taken out of a commit by hand (a reset?): {by_hand}"
    return _c("uncommitted events", "warn", what, fix)


def check_clock(state: dict) -> dict:
    top = state.get("max_hlc")
    parsed = model.parse_hlc(top) if top else None
    if not parsed:
        return _c("clock skew", "skip", "no events yet")
    now = clock.now_ms()
    ahead = parsed[0] - now
    if ahead > SKEW_WARN_MS:
        return _c("clock skew", "warn", f"the newest event is {ahead / 1000:.0f}s ahead of this machine's clock",
                  "sync this machine's clock (timedatectl / ntpdate); ordering stays correct, "
                  "but timestamps and deadlines will look wrong")
    return _c("clock skew", "ok", "this clock is not behind the newest event"
              + (f" (newest event {-ahead / 1000:.0f}s ago)" if ahead < 0 else ""))


def check_session(state: dict, session: str | None) -> dict:
    if not session:
        return _c("session", "skip", "no --session or HANDOFF_SESSION given",
                  "export HANDOFF_SESSION=<id> (from `handoff session new`) so commands and hooks know who acts")
    from handoff.core import queries
    s = queries.find_session(state, session)
    if s is None:
        return _c("session", "fail", f"session {session!r} not found",
                  "open one with `handoff session new --agent NAME --channel C` and export its id")
    if s["state"] == "closed":
        return _c("session", "fail", f"session {s['session_id']} is closed",
                  "open a new one with `handoff session new`")
    return _c("session", "ok", f"{s['session_id']} is {s['peer_id']} in #{', #'.join(s['channels'])}")


def check_watcher(ws, state: dict, session: str | None) -> dict:
    if not session:
        return _c("watcher", "skip", "no session to check")
    from handoff.core import queries
    s = queries.find_session(state, session)
    if s is None:
        return _c("watcher", "skip", "unknown session")
    live = [w for w in running_watchers(ws) if {"*", s["session_id"]} & set(w.get("sessions") or [])]
    if live:
        return _c("watcher", "ok", f"pid {', '.join(str(w['pid']) for w in live)} watches {s['session_id']}")
    return _c("watcher", "warn", f"no watcher is running for {s['session_id']}: new inbox entries are only seen "
              "when the agent asks", f"handoff watch --session {s['session_id']} --exec 'CMD' (or a hook "
              "that runs `handoff brief`)")


def running_watchers(ws) -> list[dict]:
    """Watchers (``handoff watch``, ``Session.watch``) registered under the git common dir, process alive."""
    out = []
    d = ws.paths.shared / "watchers"
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            info = json.loads(f.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append(info)
    return out


def check_hooks(worktree: Path) -> list[dict]:
    """Hook scripts named in .claude/settings*.json must exist and be executable."""
    out = []
    settings = [p for p in (worktree / ".claude" / "settings.json", worktree / ".claude" / "settings.local.json")
                if p.exists()]
    for p in settings:
        rel = p.relative_to(worktree)
        try:
            data = json.loads(p.read_text())
        except ValueError as exc:
            out.append(_c(f"hooks ({rel})", "fail", f"not valid JSON: {exc}", f"fix {rel}"))
            continue
        commands = [h.get("command", "") for groups in (data.get("hooks") or {}).values() for g in groups
                    for h in (g.get("hooks") or []) if isinstance(h, dict)]
        if not commands:
            continue
        bad = []
        for cmd in commands:
            script = _script_of(cmd, worktree)
            if script is None:
                continue
            if not script.exists():
                bad.append(f"{script} is missing")
            elif not os.access(script, os.X_OK):
                bad.append(f"{script} is not executable")
        if bad:
            out.append(_c(f"hooks ({rel})", "fail", "; ".join(bad),
                          "copy the scripts from examples/claude-code/ and `chmod +x` them"))
        else:
            out.append(_c(f"hooks ({rel})", "ok", f"{len(commands)} hook command(s), their scripts present and executable"))
    if not out:
        out.append(_c("agent hooks", "skip", "no .claude/settings.json with hooks in this repository",
                      "see examples/claude-code/ (session start runs `handoff brief`)"))
    return out


def _script_of(command: str, worktree: Path) -> Path | None:
    """The script a hook command runs (its first word ending in .sh or .py), if any."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for w in words:
        w = w.replace("${CLAUDE_PROJECT_DIR}", str(worktree)).replace("$CLAUDE_PROJECT_DIR", str(worktree))
        if w.endswith((".sh", ".py")):
            return Path(w) if os.path.isabs(w) else worktree / w
    return None


def check_inotify(root: Path) -> dict:
    try:
        watches = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
        instances = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    except (OSError, ValueError):
        return _c("inotify limits", "skip", "not Linux (or /proc unreadable): the watcher uses the native API "
                  "or polling")
    dirs = sum(1 for _ in root.rglob("*") if _.is_dir()) + 1 if root.is_dir() and not root.is_symlink() else 1
    need = max(MIN_WATCHES, dirs * 4)
    if watches < need or instances < 16:
        return _c("inotify limits", "warn", f"max_user_watches={watches}, max_user_instances={instances}; "
                  f".handoffs/ has {dirs} directories (watchers fall back to polling when limits are hit)",
                  f"sudo sysctl fs.inotify.max_user_watches={max(need, 65536)} fs.inotify.max_user_instances=512")
    return _c("inotify limits", "ok", f"max_user_watches={watches}, max_user_instances={instances}, "
              f"{dirs} directories to watch")


def human(d: dict) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}
    out = [f"handoff {d['version']}"] if d.get("version") else []
    for c in d["checks"]:
        out.append(f"[{marks[c['status']]}] {c['check']}: {render.safe(c['message'])}")
        if c["fix"] and c["status"] in ("warn", "fail"):
            out.append(f"       fix: {render.safe(c['fix'])}")
    n = d["counts"]
    out.append(f"{n['ok']} ok, {n['warn']} warnings, {n['fail']} problems"
               + ("" if d["ok"] else " — handoff will not work until the problems are fixed"))
    return "\n".join(out)
