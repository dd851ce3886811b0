"""The imperative shell around the pure core: open a repo, read state, write events.

``Workspace`` is the one object the CLI, the Python API, the MCP server and
the watcher all go through.  Reads list and decode the event files (through
the content-keyed cache) and reduce them.  Writes take the writer lock,
re-read state, let the caller build and check the events against it, stamp
ids and clocks, publish the files atomically and commit them.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from handoff.core import model
from handoff.core.yaml import codec
from handoff.git import cmd as gitcmd
from handoff.git import signing
from handoff.store import clock
from handoff.store import files as store
from handoff.store.place import HANDOFFS, Place

MAX_SKEW_MS = 3600 * 1000


@dataclass
class WriteResult:
    events: list[dict]
    paths: list[str]
    committed: bool = False
    commit: str | None = None
    commit_skipped: str | None = None
    replayed: bool = False
    swept: list[str] = field(default_factory=list)
    commit_pending: bool = False  # published with a pending marker: the next write or `handoff flush` commits it

    def to_json(self) -> dict:
        return {"ids": [e["id"] for e in self.events], "paths": self.paths, "committed": self.committed,
                "commit": self.commit, "commit_skipped": self.commit_skipped, "replayed": self.replayed,
                "commit_pending": self.commit_pending}


class Workspace(Place):
    def __init__(self, repo: str | os.PathLike | None = None, *, require_init: bool = True):
        super().__init__(repo, require_init=require_init)
        self._state: dict | None = None
        self.wrote = False  # this workspace published event files

    def records(self) -> list[dict]:
        from handoff.index import load_records
        self.refuse_symlinks()
        return load_records(self)

    def state(self, refresh: bool = False) -> dict:
        """``reducer.reduce`` of every record (plus ``clock_diagnostics`` for now), read lazily from the index."""
        if self._state is None or refresh:
            from handoff import index
            self.refuse_symlinks()
            self._state = index.state(self, clock.now_ms())
        return self._state

    # ------------------------------------------------------------- writes
    def write(self, build: Callable[[dict], list[dict]], *, commit: bool | None = None,
              message: Callable[[list[dict]], str] | None = None) -> WriteResult:
        """Build events against fresh state under the writer lock, then publish and commit them.

        ``build(state)`` returns event drafts (without id/ts/hlc unless it
        wants a specific id) or raises HandoffError to refuse.  A draft with
        ``_replay`` set is an idempotent retry: nothing is written.  ``commit``: True commits now, False
        never, None as the config says (``commit: batch``: published with pending markers, committed
        together later, see ``batching``).
        """
        from handoff.app import batching
        from handoff.git import commit as gitcommit  # (writes only: a read never loads the tree builder)

        mode = self.commit_mode() if commit is None else ("auto" if commit else "off")
        commit = mode != "off"
        with store.file_lock(self.paths.shared / "lock"):
            tmp_dir = self.paths.local / "tmp"
            store.sweep_temp(tmp_dir)  # under the lock, any staged file belongs to a writer that was killed
            gitcommit.sweep_private(self.paths)
            state = self.state(refresh=True)
            drafts = build(state)
            if drafts and all(d.get("_replay") for d in drafts):
                return WriteResult(events=[d["_replay"] for d in drafts], paths=[], replayed=True)
            events = self._stamp(state, [d for d in drafts if not d.get("_replay")])
            files = [(f"{HANDOFFS}/{model.event_path(ev)}", codec.dump(ev)) for ev in events]
            for folder in sorted({rel.rsplit("/", 1)[0] for rel, _ in files}):  # refuse before anything is written
                store.refuse_symlinks(self.paths.worktree, folder)
            result = WriteResult(events=events, paths=[rel for rel, _ in files])
            skipped = None
            hold = mode == "batch" and not batching.due(self)  # batched: publish with markers, commit later
            if commit and not hold:
                _ref, _head, skipped = gitcmd.head_state(self.paths)
                if not skipped:
                    gitcommit.wait_index_unlocked(self.paths)
            staged: list[Path] = []
            try:
                for rel, data in files:
                    staged.append(store.stage(data, tmp_dir, rel.rsplit("/", 1)[-1]))
                pending = self._pending() if commit and not skipped and not hold else []

                def publish() -> None:
                    if commit:  # markers first: a crash after publishing is committed by the next write
                        for ev, (rel, _) in zip(events, files):
                            store.atomic_write_local(self.paths.local / "pending" / ev["id"], rel.encode())
                    for (rel, _), tmp in zip(files, staged):
                        store.link(tmp, self.paths.worktree, rel)

                if commit and not skipped and not hold:
                    ours = set(result.paths)
                    result.swept = [rel for rel, _ in pending if rel not in ours]
                    ledger = self._ledger()
                    result.swept += [rel for rel in self._dropped(_head, ledger) if rel not in ours | set(result.swept)]
                    entries = list(zip(result.paths, gitcommit.hash_files(self.paths, staged)))
                    left = [rel for rel in result.swept]
                    entries += list(zip(left, gitcommit.hash_files(self.paths, left)))
                    try:
                        text = (message or default_message)(events)
                        if mode == "batch":  # (the window passed: this write commits the whole batch)
                            text = batching.message([rel for rel, _ in entries])
                        elif result.swept:
                            text += ("\n\nAlso commits event files an earlier write left uncommitted or a later "
                                     "commit took out:\n" + "".join(f"  {rel}\n" for rel in result.swept))
                        result.commit = gitcommit.commit_entries(self.paths, sorted(entries), text, publish)
                        result.committed = True
                        self._clear_pending([m for _, m in pending] + [ev["id"] for ev in events])
                        self._remember_committed(result.commit, [rel for rel, _ in entries], ledger)
                    except gitcommit.CommitSkipped as exc:
                        skipped = str(exc)
                else:
                    publish()
                    if hold:
                        result.commit_pending = True
                        batching.schedule(self)
            finally:
                store.discard(staged)
            self.wrote = True  # (a command that fails after this must not be run again: see cli.common._run)
            self._note_written([(rel[len(HANDOFFS) + 1:], data, ev) for (rel, data), ev in zip(files, events)
                                if (self.paths.worktree / rel).exists()])
            if skipped:
                result.commit_skipped = f"{skipped}: events written, not committed; the next write commits them"
                result.commit_pending = True
            self._state = None
            return result

    def _note_written(self, written: list[tuple[str, bytes, dict]]) -> None:
        """Tell the index what we published (it parses it once now, not on the next read)."""
        from handoff import index
        index.note_written(self, written)

    def commit_pending(self, message: Callable[[list[str]], str]) -> WriteResult:
        """Commit, as one commit of ``.handoffs/`` paths only, every file earlier writes published with a
        pending marker (batch mode, or a commit that failed), plus any a later commit took out.  The caller
        holds the writer lock (``batching.flush``).  ``paths``: what was committed (or is still pending)."""
        from handoff.git import commit as gitcommit
        result = WriteResult(events=[], paths=[])
        pending = self._pending()
        if not pending:
            return result
        rels = [rel for rel, _ in pending]
        result.paths = rels
        _ref, head, skipped = gitcmd.head_state(self.paths)
        if not skipped:
            gitcommit.wait_index_unlocked(self.paths)
            ledger = self._ledger()
            rels += [rel for rel in self._dropped(head, ledger) if rel not in rels]
            entries = sorted(zip(rels, gitcommit.hash_files(self.paths, rels)))
            try:
                result.commit = gitcommit.commit_entries(self.paths, entries, message(rels))
                result.committed = True
                self._clear_pending([m for _, m in pending])
                self._remember_committed(result.commit, rels, ledger)
            except gitcommit.CommitSkipped as exc:
                skipped = str(exc)
        if skipped:
            result.commit_skipped = f"{skipped}: not committed; the next write or flush commits them"
            result.commit_pending = True
        return result

    def _pending(self) -> list[tuple[str, str]]:
        """(path, marker name) of events a previous write published but did not commit."""
        pending_dir = self.paths.local / "pending"
        out: list[tuple[str, str]] = []
        try:
            names = sorted(os.listdir(pending_dir))
        except OSError:
            return out
        for name in names:
            try:
                rel = (pending_dir / name).read_text().strip()
            except OSError:
                continue
            wt = self.paths.worktree
            if rel.startswith(f"{HANDOFFS}/") and ".." not in rel.split("/") and store.is_real_file(wt, rel):
                out.append((rel, name))
            else:  # a marker whose file never got published (killed in between): nothing to commit
                self._clear_pending([name])
        return out

    # A plain `git commit` reads the index before it locks it, and writes that copy back (COMMIT_LOCK) even
    # when its own compare-and-swap of HEAD then fails.  If it read the index just before we added our
    # files and locked it just after our commit landed, the index loses our files while HEAD has them, and
    # that person's next commit takes them out of the branch (they stay on disk, untracked).  No ordering
    # on our side prevents it, so each write checks that what recent writes committed is still in HEAD and
    # commits again whatever was taken out.  The check costs one `git cat-file` and runs only when someone
    # else moved HEAD since our last commit.
    _RECENT_MS = 24 * 3600 * 1000
    _RECENT_MAX = 512
    _LEDGER = "committed"  # under the worktree's git dir: our last commit, then "<ms> <path>" per line

    def _ledger(self) -> tuple[str | None, list[tuple[int, str]]]:
        try:
            lines = (self.paths.local / self._LEDGER).read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return None, []
        recent = []
        for line in lines[1:]:
            ms, _, rel = line.partition(" ")
            if ms.isdigit() and rel.startswith(f"{HANDOFFS}/") and ".." not in rel.split("/"):
                recent.append((int(ms), rel))
        return (lines[0].strip() if lines else None), recent

    def _dropped(self, head: str | None, ledger: tuple[str | None, list[tuple[int, str]]]) -> list[str]:
        """Files recent writes committed (``ledger``) that are no longer in ``head`` but still on disk."""
        last, recent = ledger
        if not head or not recent or last == head:
            return []
        rels = [rel for _ms, rel in recent if store.is_real_file(self.paths.worktree, rel)]
        if not rels:
            return []
        proc = gitcmd.run(self.paths.worktree, "cat-file", "--batch-check",
                          input="".join(f"{head}:{rel}\n" for rel in rels).encode(), check=False)
        if proc.returncode != 0:
            return []
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        return [rel for rel, line in zip(rels, lines) if line.endswith(" missing")]

    def _remember_committed(self, commit: str | None, rels: list[str],
                            ledger: tuple[str | None, list[tuple[int, str]]]) -> None:
        now = clock.now_ms()
        _last, recent = ledger
        recent = [(ms, rel) for ms, rel in recent if abs(now - ms) < self._RECENT_MS and rel not in rels]
        recent += [(now, rel) for rel in rels]
        path = self.paths.local / self._LEDGER
        tmp = self.paths.local / "tmp" / f"{self._LEDGER}.{os.getpid()}.part"  # swept like staged files
        try:  # a hint, not a record: no fsync; a lost or torn file only skips one check
            tmp.write_text(f"{commit or ''}\n" + "".join(f"{ms} {rel}\n" for ms, rel in recent[-self._RECENT_MAX:]))
            os.replace(tmp, path)
        except OSError:
            pass

    def _clear_pending(self, names: list[str]) -> None:
        for name in names:
            try:
                os.unlink(self.paths.local / "pending" / name)
            except OSError:
                pass

    def _stamp(self, state: dict, drafts: list[dict]) -> list[dict]:
        now = clock.now_ms()
        seen = self._seen_hlc(state, now)
        key = signing.signing_key(self.config)
        out: list[dict] = []
        for d in drafts:
            ev = {k: v for k, v in d.items() if v is not None and not k.startswith("_")}
            seen = model.next_hlc(seen, now)
            ev["protocol"] = model.PROTOCOL
            ev["workspace_id"] = self.workspace_id
            ev.setdefault("id", model.new_event_id(ev["kind"], clock.new_ulid(now)))
            ev["ts"] = model.format_ts(now)
            ev["hlc"] = model.format_hlc(*seen)
            ev.setdefault("body", {})
            if out and ev.get("after"):  # ops names an earlier draft of this write by a placeholder id
                ev["after"] = sorted({out[-1]["id"] if a == "msg_probe" else a for a in ev["after"]})
            model.check_event(ev)
            if key:  # last: the signature covers every other field
                ev["sig"] = signing.sign(signing.canonical(ev), key)
            out.append(ev)
        # seen is set once a draft is stamped; builds return at least one draft (an empty list with no hlc
        # yet would raise TypeError here, as it always has), so the checker's None is left as it was
        store.write_hint(self.paths.shared / "hlc", model.format_hlc(*seen).encode())  # type: ignore[misc]
        return out

    def _seen_hlc(self, state: dict, now: int) -> tuple[int, int] | None:
        seen = None
        try:
            seen = model.parse_hlc((self.paths.shared / "hlc").read_text().strip())
        except OSError:
            pass
        if seen and seen[0] > now + MAX_SKEW_MS:
            seen = None  # a bad clock must not drag every later writer into the future
        top = state.get("max_hlc")
        if top:
            hlc = model.parse_hlc(top)
            if hlc and hlc[0] <= now + MAX_SKEW_MS and (seen is None or hlc > seen):
                seen = hlc
        return seen


def default_message(events: list[dict]) -> str:
    ev = events[0]
    where = ev.get("thread_id") or ev.get("direct_id") or ev.get("work_id") or ev.get("session_id") or ""
    place = f" in {ev['channel']}/{where}" if ev.get("channel") else (f" {where}" if where else "")
    more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
    return f"handoff: {ev['kind']}{place} from {ev['from']}{more}"
