"""The checks behind ``handoff verify``, as pure functions over data git gave us.

Nothing here runs git or reads files: ``verify.py`` gathers the diff, the
trees, the blobs and the commit identities, and these functions turn them
into findings.  A finding names the file (repo-relative, so CI annotations
land on it), a code and what is wrong.

Severity rule: a problem in a file the range adds (or a violation the range
introduces) is an ``error`` and fails verification; the same problem in a
file that was already on the base is a ``warning``: reported, never blocking
an unrelated branch.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from handoff.core import queries
from handoff.core.model import parse_hlc, parse_ts

HANDOFFS = ".handoffs"
EVENTS = f"{HANDOFFS}/events/"
EDITABLE = frozenset(f"{HANDOFFS}/{n}" for n in ("config.yaml", "README.md", ".gitattributes", ".gitignore",
                                                 "allowed_signers"))
SENSITIVE = frozenset(f"{HANDOFFS}/{n}" for n in ("config.yaml", "allowed_signers"))
MODE_NAMES = {"120000": "a symlink", "160000": "a submodule", "100755": "an executable file", "040000": "a directory"}
REGULAR = "100644"


def finding(severity: str, path: str, code: str, message: str) -> dict[str, Any]:
    return {"severity": severity, "path": path, "code": code, "message": message}


def _sev(new: bool) -> str:
    return "error" if new else "warning"


def _old(new: bool) -> str:
    return "" if new else " (already on the base)"


def _mode_name(mode: str) -> str:
    return MODE_NAMES.get(mode, f"mode {mode}")


# ------------------------------------------------------------------ the diff


@dataclass(frozen=True)
class Change:
    """One line of ``git diff --raw -z --no-renames``."""
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    status: str
    path: str


def parse_raw_diff(data: bytes) -> list[Change]:
    parts = data.split(b"\0")
    out, i = [], 0
    while i + 1 < len(parts):
        meta = parts[i].decode()
        if not meta.startswith(":"):
            i += 1
            continue
        old_mode, new_mode, old_blob, new_blob, status = meta[1:].split()
        out.append(Change(old_mode, new_mode, old_blob, new_blob, status[0],
                          parts[i + 1].decode("utf-8", "surrogateescape")))
        i += 2
    return out


def append_only(changes: list[Change], identity_changed: bool = False,
                judged_by_base: bool = True) -> tuple[list[dict[str, Any]], set[str]]:
    """Findings for anything under .handoffs/ that is not a plain addition; and the added paths.

    ``identity_changed``: the config's ``identity`` section differs between base and head (a change
    to the rest of config.yaml is ordinary and not reported).  Such a change, or one to
    allowed_signers, is a warning when the range changes nothing else, and an error when the range
    also adds events: new events are judged by the base's identity config, so a change to it is
    reviewed and merged on its own, never slipped in beside events it would vouch for.  (With no base
    to judge by, ``judged_by_base`` False, the head's config is all there is: a warning.)
    """
    findings, added = [], set()
    config = f"{HANDOFFS}/config.yaml"
    added_by_blob = {c.new_blob: c.path for c in changes if c.status == "A"}
    with_events: int | bool = judged_by_base and sum(1 for c in changes if c.status == "A" and c.path.startswith(EVENTS))

    def sensitive(path: str, verb: str) -> dict[str, Any]:
        if with_events:
            return finding("error", path, "identity_config_changed",
                           f"{verb} in a range that also adds {with_events} event file(s): new events are judged "
                           "by the base's identity config; change identity in a range of its own")
        return finding("warning", path, "identity_config_changed",
                       f"{verb} in this range: review who may write as which agent")
    for c in changes:
        if c.status == "A":
            added.add(c.path)
            if not c.path.startswith(EVENTS) and c.path not in EDITABLE:
                findings.append(finding("warning", c.path, "unknown_file",
                                        "not an event file nor a known .handoffs/ file; handoff ignores it"))
            elif c.path in SENSITIVE and (c.path != config or identity_changed):
                findings.append(sensitive(c.path, "added"))
            continue
        if c.status == "D":
            moved = added_by_blob.get(c.old_blob)
            if moved:
                findings.append(finding("error", c.path, "renamed",
                                        f"moved to {moved}: a committed event file keeps its name and place"))
            else:
                findings.append(finding("error", c.path, "deleted",
                                        "a committed handoff file was removed: the log is append-only"))
        elif c.status == "T" or (c.status == "M" and c.old_mode != c.new_mode):
            findings.append(finding("error", c.path, "mode_changed",
                                    f"changed from {_mode_name(c.old_mode)} to {_mode_name(c.new_mode)}"))
        elif c.status == "M" and c.path in EDITABLE:
            if c.path in SENSITIVE and (c.path != config or identity_changed):
                findings.append(sensitive(c.path, "changed"))
        elif c.status == "M":
            findings.append(finding("error", c.path, "edited",
                                    "a committed event file was changed: write a new event instead"))
        else:
            findings.append(finding("error", c.path, "changed", f"unexpected change ({c.status})"))
    return findings, added


# -------------------------------------------------------------- every file


def file_checks(entries: Iterable[Any], records: dict[str, dict[str, Any]], is_new: Callable[[str], bool], *, now_ms: int,
                max_skew_ms: int, elsewhere: dict[str, str], skip: set[str],
                added_at: Callable[[str], int | None] = lambda p: None, max_backdate_ms: int = 0,
                backdated_severity: str = "error") -> list[dict[str, Any]]:
    """Mode, name, parse, schema, unique id, clock and causal links of every file under events/.

    ``entries``: the tree's (mode, blob, path) under .handoffs/events;
    ``records``: decoded record by repo-relative path; ``elsewhere``: event
    id -> ref for events only other branches hold; ``added_at``: the time (ms) of the
    commit that adds a new file, which its clock may not precede by more than ``max_backdate_ms``
    (``backdated_severity``: a squash merge re-dates the commit, so a push check only warns).
    """
    findings: list[dict[str, Any]] = []
    events: dict[str, dict[str, Any]] = {}
    paths_by_id: dict[str, list[str]] = {}
    for e in entries:
        if e.path in skip:
            continue
        new = is_new(e.path)
        name = e.path.rsplit("/", 1)[-1]
        if e.mode != REGULAR:
            findings.append(finding(_sev(new), e.path, "not_regular_file",
                                    f"{_mode_name(e.mode)}: event files must be plain files (mode 100644){_old(new)}"))
            continue
        if not name.endswith(".yaml") or name.startswith("."):
            findings.append(finding(_sev(new), e.path, "stray_file", f"not an event file{_old(new)}"))
            continue
        rec = records.get(e.path)
        if rec is None:
            continue
        if "error" in rec:
            err = rec["error"]
            findings.append(finding(_sev(new), e.path, err["reason_code"], f"{err['message']}{_old(new)}"))
            if rec.get("id"):
                paths_by_id.setdefault(rec["id"], []).append(e.path)
            continue
        ev = rec["event"]
        events[e.path] = ev
        paths_by_id.setdefault(ev["id"], []).append(e.path)
    hlc_by_id = {ev["id"]: parse_hlc(ev["hlc"]) for ev in events.values()}
    for eid, paths in sorted(paths_by_id.items()):
        if len(paths) > 1:
            for p in paths:
                others = ", ".join(q for q in paths if q != p)
                findings.append(finding(_sev(is_new(p)), p, "duplicate_id", f"id {eid} is also used by {others}"
                                        f"{_old(is_new(p))}"))
    for path, ev in sorted(events.items()):
        findings += _clock_and_links(path, ev, is_new(path), now_ms, max_skew_ms, hlc_by_id, elsewhere)
        if is_new(path) and max_backdate_ms:
            findings += _backdated(path, ev, added_at(path), max_backdate_ms, backdated_severity)
    return findings


def _hlc_ms(ev: dict[str, Any]) -> int:
    """The wall-clock part of an event's HLC (the schema checked its form before any check runs)."""
    hlc = parse_hlc(ev["hlc"])
    assert hlc is not None
    return hlc[0]


def _backdated(path: str, ev: dict[str, Any], added_ms: int | None, max_backdate_ms: int, severity: str) -> list[dict[str, Any]]:
    """An event dated long before the commit that adds it: a clock set back, or an event crafted to sort
    before others (a session-open ahead of the real one, an accept ahead of a rival's)."""
    if added_ms is None:
        return []
    ts = parse_ts(ev["ts"])
    hlc_ms = _hlc_ms(ev)
    earliest = min(hlc_ms, ts if ts is not None else hlc_ms)
    if earliest >= added_ms - max_backdate_ms:
        return []
    hours = (added_ms - earliest) // 3_600_000
    return [finding(severity, path, "clock_backdated",
                    f"dated {hours} h before the commit that adds it (ts {ev['ts']}, hlc {ev['hlc']}); "
                    f"events are committed within {max_backdate_ms // 3_600_000} h of being written")]


def _clock_and_links(path: str, ev: dict[str, Any], new: bool, now_ms: int, max_skew_ms: int,
                     hlc_by_id: dict[str, Any], elsewhere: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    hlc, hlc_ms = parse_hlc(ev["hlc"]), _hlc_ms(ev)
    ts = parse_ts(ev["ts"])
    limit = now_ms + max_skew_ms
    if hlc_ms > limit or (ts is not None and ts > limit):
        out.append(finding(_sev(new), path, "clock_skew",
                           f"clock is {((max(hlc_ms, ts or 0) - now_ms) // 60000)} min in the future "
                           f"(ts {ev['ts']}, hlc {ev['hlc']}){_old(new)}"))
    for parent in ev.get("after") or []:
        if parent == ev["id"]:
            out.append(finding(_sev(new), path, "causal_link", f"lists itself in `after`{_old(new)}"))
        elif parent in hlc_by_id:
            if hlc_by_id[parent] >= hlc:
                out.append(finding(_sev(new), path, "causal_order",
                                   f"its clock {ev['hlc']} is not after its parent {parent}{_old(new)}"))
        elif parent in elsewhere:
            out.append(finding("warning", path, "parent_elsewhere",
                               f"follows {parent}, which only {elsewhere[parent]} holds: merge that branch too"))
        elif new:
            out.append(finding("warning", path, "unknown_parent", f"follows {parent}, found on no branch here"))
    return out


# ---------------------------------------------------------------- protocol


def protocol_checks(base_state: dict[str, Any], head_state: dict[str, Any], head_paths: set[str]) -> list[dict[str, Any]]:
    """Lifecycle refusals (and other per-event diagnostics): new in the range -> error, older -> warning."""
    def keyed(state: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(d["path"], d["id"], d["reason_code"]) for d in state["diagnostics"] if d.get("id")}

    before = keyed(base_state)
    out = []
    for d in head_state["diagnostics"]:
        if not d.get("id") or d["reason_code"] == "id_conflict":
            continue  # unreadable files and duplicate ids are reported by file_checks
        path = f"{HANDOFFS}/{d['path']}"
        introduced = (d["path"], d["id"], d["reason_code"]) not in before and path in head_paths
        suffix = "" if introduced else (" (already on the base)" if path in head_paths else " (on another branch)")
        out.append(finding("error" if introduced else "warning", path, d["reason_code"],
                           f"{d['message']}{suffix}"))
    return out


# ---------------------------------------------------------------- sessions


def split_rival_opens(context: list[dict[str, Any]], records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Other branches' records, less their session-opens of ids the checked revisions open themselves.

    Events on other branches are unreviewed context: they may resolve a reference, never take a
    session over in the judgement of a range (a branch pushed with a back-dated copy of someone's
    session-open would otherwise sort first and get the owner's own events refused).  Returns the
    context to reduce and the rival opens left out (reported as warnings by ``session_checks``).
    """
    held = {r["event"]["id"] for r in records if "event" in r}
    opened = {r["event"]["session_id"] for r in records if "event" in r and r["event"]["kind"] == "session-open"}
    keep, rivals = [], []
    for r in context:
        ev = r.get("event")
        if ev is not None and ev["kind"] == "session-open" and ev["session_id"] in opened and ev["id"] not in held:
            rivals.append(r)
        else:
            keep.append(r)
    return keep, rivals


def session_checks(new_events: list[tuple[str, dict[str, Any]]], base_state: dict[str, Any], rival_opens: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """A session id belongs to its first opener: a new open of an id the base already has, by another
    peer or agent, is refused whatever its clock says (a back-dated copy would sort first and take the
    session over).  The same identity opening it again (two clones, one ``--id``) is harmless.  A new
    open of an id another branch opens differently is a warning: merging both keeps one of them."""
    out = []
    rivals: dict[str, list[dict[str, Any]]] = {}
    for r in rival_opens:
        rivals.setdefault(r["event"]["session_id"], []).append(r)
    for path, ev in new_events:
        if ev["kind"] != "session-open":
            continue
        me = (ev["from"], ev["body"]["agent"])
        owner = base_state["sessions"].get(ev["session_id"])
        if owner is not None and me != (owner["peer_id"], owner["agent"]):
            out.append(finding("error", path, "session_taken",
                               f"opens session {ev['session_id']} again as {ev['from']}; on the base it belongs to "
                               f"{owner['peer_id']} (agent {owner['agent']!r}): open a session with a new id"))
        elif owner is None:
            for r in rivals.get(ev["session_id"], []):
                other = r["event"]
                if (other["from"], other["body"]["agent"]) != me:
                    out.append(finding("warning", path, "session_elsewhere",
                                       f"session {ev['session_id']} is also opened by {other['from']} on "
                                       f"{r.get('ref', 'another branch')}: once both are merged only the first "
                                       "open in event order keeps the id"))
    return out


# ---------------------------------------------------------------- identity


def identity_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The ``identity`` section, normalised; None when identity checks are off."""
    raw = config.get("identity")
    if not isinstance(raw, dict) or raw.get("enforce") is False:
        return None
    agents = raw.get("agents") or {}
    if not isinstance(agents, dict):
        agents = {}
    agents = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in agents.items()}
    signatures = raw.get("signatures") is True
    if not agents and not signatures:
        return None
    return {"agents": agents, "signatures": signatures,
            "email_of": "committer" if raw.get("email_of") == "committer" else "author",
            "allowed_signers": str(raw.get("allowed_signers") or "allowed_signers")}


def admins_of(config: dict[str, Any]) -> list[str]:
    """``identity.admins``: agents that may close any agent's session (read even with enforce off:
    it is a protocol rule of the reducer, not an identity check)."""
    raw = config.get("identity")
    admins = raw.get("admins") if isinstance(raw, dict) else None
    return sorted({a for a in admins if isinstance(a, str)}) if isinstance(admins, list) else []


def email_allowed(email: str | None, patterns: list[str]) -> bool:
    if not email:
        return False
    return any(fnmatch.fnmatchcase(email.lower(), p.lower()) for p in patterns)


def identity_checks(new_events: list[tuple[str, dict[str, Any]]], cfg: dict[str, Any], agent_of: Callable[[dict[str, Any]], str],
                    email_of: Callable[[str], str | None],
                    check_sig: Callable[[dict[str, Any], str], str | None] | None) -> list[dict[str, Any]]:
    out = []
    agents = cfg["agents"]
    for path, ev in new_events:
        if ev["kind"] == "approval":
            continue  # (a person's, not an agent's: approvals.verify_findings holds it to the approvers)
        agent = agent_of(ev)
        if agents:
            allowed = agents.get(agent, []) + agents.get("*", [])
            email = email_of(path)
            if not allowed:
                out.append(finding("error", path, "identity_unknown_agent",
                                   f"agent {agent!r} has no allowed emails in identity.agents"))
            elif not email_allowed(email, allowed):
                out.append(finding("error", path, "identity_mismatch",
                                   f"written as agent {agent!r} but committed by {email or 'nobody'}; "
                                   f"allowed: {', '.join(allowed)}"))
        if cfg["signatures"]:
            if not ev.get("sig"):
                out.append(finding("error", path, "unsigned", "no signature (identity.signatures is on)"))
            elif check_sig is not None:
                why = check_sig(ev, agent)
                if why:
                    out.append(finding("error", path, "bad_signature", f"signature does not verify for {agent!r}: {why}"))
    return out


def agent_resolver(head_state: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    """The agent who wrote an event: a session-open names it; else the author's session (or peer id prefix)."""
    by_peer = queries.agent_by_peer(head_state)

    def agent_of(ev: dict[str, Any]) -> str:
        if ev["kind"] == "session-open":
            return str((ev.get("body") or {}).get("agent") or "")
        return by_peer.get(ev["from"]) or ev["from"].split(".", 1)[0]

    return agent_of


# ------------------------------------------------------------------ verdict


def summarize(findings: list[dict[str, Any]]) -> dict[str, Any]:
    order = {"error": 0, "warning": 1}
    findings = sorted(findings, key=lambda f: (order.get(f["severity"], 2), f["path"], f["code"]))
    errors = sum(1 for f in findings if f["severity"] == "error")
    return {"ok": errors == 0, "errors": errors, "warnings": len(findings) - errors, "findings": findings}
