"""The index: a disposable, content-keyed cache of parsed events and reduced state.

The event files are the only source of truth.  This cache lives in SQLite
(standard library) under ``$(git rev-parse --git-common-dir)/handoff/cache/``,
is shared by every worktree of the repo, and can be deleted at any time: it
is rebuilt when it is missing, corrupt, or written by another version of the
code (any change to the modules that parse or reduce events changes the key).

Two layers (docs/PERFORMANCE.md has the figures):

* **Parse cache** (``parsed-*.sqlite3``, shared by all worktrees): (path, git
  blob id) -> decoded record.  A file's blob id is computed in Python
  (``sha1("blob <len>\\0" + bytes)``, what ``git hash-object`` gives) and
  memoised per worktree by ``(path, size, mtime_ns, inode, ctime_ns)``.
* **State** (``view-*.sqlite3``, one per worktree): the reduced state stored
  row by row (messages, work units, threads, direct rooms, leases) so a
  command loads only what it reads, plus the exact set of files it was folded
  from.

Finding what changed costs one ``stat`` per directory under
``.handoffs/events/`` (about 200 for 100,000 events over six months): a
directory whose mtime is unchanged is not listed again.  Adding or removing
a file changes its directory's mtime; an mtime too close to the moment it
was read (git's "racy" rule) is not trusted.  A file edited in place with no
change to its directory (the tool never does this; ``verify`` flags it) is
noticed when its directory next changes, or after ``handoff`` drops the
cache.

New files are parsed (on every core when there are many) and folded onto the
saved state when they all sort after everything already folded -- the usual
case for new writes and pulls.  Anything else (a removed file, a branch
switch, an event that sorts earlier) folds everything again from the parse
cache without parsing again: folding is cheap, parsing is not.

``Workspace.state()`` reads through ``state()``.  Extra event sources (e.g.
remote-tracking branches) plug in through ``SOURCES``: records from blob ids,
cached the same way.
"""
from __future__ import annotations

import marshal
import os
import sqlite3
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from handoff.core import reducer
from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.store.place import Place

INDEX_FORMAT = 2
RACY_NS = 3_000_000_000  # a directory or file modified this close to when we read it is read again next time
FINE_RACY_NS = 200_000_000  # the same where timestamps are finer than a second (see _racy)
PARALLEL_MIN = 1500  # below this many files to parse, one process is faster than starting workers
SPLIT_MIN = 200  # from this many, one forked child parses half of them (a fork costs a few ms; a pool, ~100)
KEEP_PARSED = 5000  # up to this many files parsed at once are handed back parsed (more: read back in order)
MAX_VIEWS = 16  # state files kept for worktrees not used lately
BUSY_MS = 60_000  # how long a command waits for another's write to the cache (in WAL mode readers never wait)
FIRST_BUILD_BUSY_MS = 3_600_000  # the same while a new file's first build runs (see ``_use_wal``)
# (paths under handoff/; every module of the index package counts too)
_CODE_MODULES = ("core/yaml/canon.py", "core/yaml/codec.py", "core/yaml/strict.py", "core/model.py", "core/schema.py",
                 "core/ids.py", "core/lifecycle.py", "core/reducer.py", "core/timers.py")

# What this process's refreshes did (tests and the bench read it): folds extended, folds redone, files parsed.
STATS = {"extend": 0, "refold": 0, "parsed": 0}

# Extra event sources: callables ``fn(ws) -> Source | None``.  A source names itself, gives a cheap
# ``stamp`` that changes whenever its files may have changed (tree ids, say), lists its files as
# (path relative to .handoffs/, git blob id) and reads the blobs the parse cache lacks.
SOURCES: list[Callable[[Place], Source | None]] = []  # (_remote_source is appended below)


class Source:
    """Event files that are not in the work tree; a work-tree file with the same path hides its entry."""

    def __init__(self, name: str, stamp: str, entries: Callable[[], list[tuple[str, str]]],
                 read: Callable[[list[str]], dict[str, bytes]]):
        self.name, self.stamp, self.entries, self.read = name, stamp, entries, read


def _remote_source(ws: Place) -> list[Source] | None:
    """Events on remote-tracking branches (see ``remotes``): one source per branch, keyed by its tip.

    Costs no git process when there are no remote-tracking refs, one ``for-each-ref`` otherwise; a
    branch whose tip moved is listed with ``ls-tree`` and its new blobs read in one ``cat-file``.
    """
    if _only_remote_tracking(ws.config) and not _may_have_remote_refs(ws.paths.common_dir):
        return None  # the usual answer, found without importing remotes (a few ms of start-up)
    from handoff.git import remotes, revision
    patterns = remotes.patterns_of(ws.config)
    if not patterns or not remotes.may_have_refs(ws.paths.common_dir, patterns):
        return None
    cwd = ws.paths.worktree
    tips = remotes.ref_tips(cwd, patterns)

    def source(ref: str, sha: str) -> Source:
        def entries() -> list[tuple[str, str]]:
            out = {}
            for e in revision.tree_entries(cwd, sha, revision.EVENTS_PREFIX):
                if revision.is_event_entry(e) and e.mode == "100644":
                    out[e.rel] = e.blob
            return sorted(out.items())

        def read(blobs: list[str]) -> dict[str, bytes]:
            return revision.read_blobs(cwd, blobs, limit=store.MAX_FILE_BYTES + 1)

        return Source(f"remote:{ref}", sha, entries, read)

    return [source(ref, sha) for ref, sha in tips]


def _only_remote_tracking(config: dict) -> bool:
    """The config's ``remote_refs`` (absent: the default) name only refs under refs/remotes/."""
    raw = config.get("remote_refs", ["refs/remotes/"])
    if isinstance(raw, str):
        raw = [raw]
    return isinstance(raw, list) and all(not isinstance(p, str) or not p.startswith("refs/")
                                         or p.startswith("refs/remotes/") for p in raw)


def _may_have_remote_refs(common_dir: Path) -> bool:
    """``remotes.may_have_refs`` for the default patterns (refs/remotes/...), without importing it."""
    if (common_dir / "reftable").exists():
        return True
    remotes_dir = common_dir / "refs" / "remotes"
    try:
        if any(remotes_dir.iterdir()):
            return True
    except OSError:
        pass
    try:
        return b" refs/remotes/" in (common_dir / "packed-refs").read_bytes()
    except OSError:
        return False


def _gitcmd():
    from handoff.git import cmd as gitcmd
    return gitcmd


SOURCES.append(_remote_source)


# --------------------------------------------------------------------------- public API


def state(ws: Place, now_ms: int | None = None) -> State:
    """The reduced state of the workspace's event files (plus any extra sources), from the index.

    With ``now_ms``, ``diagnostics`` also holds ``reducer.clock_diagnostics`` for that moment (events
    dated more than a day ahead), as ``Workspace.state`` always reported them.
    """
    st = _open(ws).state()
    st._now_ms = now_ms
    return st


def load_records(ws: Place) -> list[dict]:
    """Every decoded record (``{"path", "event"}`` or ``{"path", "error"}``): the work tree's from the
    parse cache, then those on remote-tracking branches (``remotes``; they carry ``ref``)."""
    from handoff.git.remotes import remote_records
    out = _open(ws).records()
    return out + remote_records(ws, {r["path"] for r in out})


def read_all_records(ws: Place) -> list[dict]:
    """Every record read and parsed straight from the files, no cache (the reference the index must match)."""
    out = []
    for rel, st, problem in store.list_event_files(ws.root):
        if problem:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"{problem}: not read"}})
            continue
        try:
            data = store.read_event_file(ws.root, rel, st)
        except OSError as exc:
            out.append({"path": rel, "error": {"reason_code": "malformed", "message": f"unreadable: {exc}"}})
            continue
        out.append(reducer.decode(rel, data))
    return out


def records_from_blobs(ws: Place, entries: list[tuple[str, str]],
                       read: Callable[[list[str]], dict[str, bytes]]) -> list[dict]:
    """Records for (path, blob id) pairs, parsing only blobs the parse cache has not seen."""
    return _open(ws).records_for(entries, read)


def note_written(ws: Place, items: list[tuple[str, bytes, dict]]) -> None:
    """The writer published these files (path under .handoffs/, bytes, event): cache their parse."""
    try:
        _open(ws).seed(items)
    except Exception:  # the cache is a convenience: never let it fail a write
        pass


def drop(ws: Place) -> None:
    """Delete the whole index (it is rebuilt on next use)."""
    for idx in list(ws.__dict__.get("_indexes", {}).values()):
        idx.close()
    _remove_all(ws.paths.shared / "cache")


# SQLite's primary result codes that say nothing is wrong inside the files (``trouble``)
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another command holds them
_UNUSABLE_CODES = {3, 7, 8, 13, 14, 15, 23}  # PERM, NOMEM, READONLY, FULL, CANTOPEN, PROTOCOL, AUTH
_IOERR = 10  # SQLITE_IOERR: the files were deleted or replaced under the connection, or the disk failed


def trouble(exc: BaseException) -> str | None:
    """What an error met while using the cache means, or None when it is not the cache's.

    "busy": another command holds the files; "unusable": full, read-only or cannot be opened (answer
    from memory, delete nothing: deleting would free space a write then reports it did not have);
    "gone": an I/O error, as when the files are deleted during a read (open them again); "damaged": the
    files or the bytes in them cannot be read (drop them and build again).
    """
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return "gone"  # (a connection closed under a state that still reads through it)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in _BUSY_CODES or (primary is None and "locked" in str(exc)):
            return "busy"
        if primary in _UNUSABLE_CODES:
            return "unusable"
        return "gone" if primary == _IOERR else "damaged"
    if isinstance(exc, (ValueError, EOFError, TypeError, KeyError)):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            return "damaged"  # raised here, not in code this module calls: bytes marshal cannot read
    return None


def note_rebuilt(cache_dir: Path, exc: BaseException) -> None:
    """Say on stderr (once per repair: the files it names are gone after it) that the cache was rebuilt."""
    why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    sys.stderr.write(f"handoff: the cache in {cache_dir} could not be read ({why}); "
                     "rebuilt it from the event files\n")


def recover(ws: Place, exc: BaseException) -> None:
    """A command failed reading the cache (``trouble(exc)`` is not None): close it, and when the files
    are damaged drop them and say so, so that the command can run once more on a fresh build."""
    kind = trouble(exc)
    if kind == "damaged":
        drop(ws)
        note_rebuilt(ws.paths.shared / "cache", exc)
    else:
        for idx in list(ws.__dict__.get("_indexes", {}).values()):
            idx.close()


def damaged_files(cache_dir: Path) -> list[tuple[str, str]]:
    """(name, error) of each cache file SQLite cannot open and read the first table of (for ``doctor``:
    a look at the header and the schema, not an integrity check of every page)."""
    from urllib.parse import quote
    try:
        names = sorted(n for n in os.listdir(cache_dir) if n.endswith(".sqlite3"))
    except OSError:
        return []
    out = []
    for name in names:
        try:
            db = sqlite3.connect(f"file:{quote(str(cache_dir / name))}?mode=ro", uri=True)
            try:
                db.execute("SELECT count(*) FROM meta").fetchone()
            finally:
                db.close()
        except sqlite3.Error as exc:
            if trouble(exc) == "damaged":
                out.append((name, str(exc)))
    return out


def unreadable(exc: BaseException) -> HandoffError:
    """The refusal when the cache still fails after being built again."""
    from handoff.errors import HandoffError
    return HandoffError("cache_unreadable", f"the cache under .git/handoff/cache cannot be used even after "
                        f"rebuilding it: {exc}",
                        hint="check the disk (space, permissions, errors), then delete .git/handoff/cache "
                             "and retry; the event files are not affected")


def for_inbox(state, session: dict, skip: set[str] | frozenset[str] = frozenset()):
    """The state ``queries.inbox`` needs for ``session``: only the messages it can keep or count as replies.

    ``queries.inbox`` looks at messages from the session's peer (its replies) and at messages addressed
    to it or broadcast in its channels since it joined; it skips everything else.  ``skip``: ids of
    messages the caller will not show whatever they are (acknowledged ones, for an inbox without
    ``--all``); they are left out before their records are read, unless the session's peer sent them
    (those count as replies).  A plain state dict is returned as it is.
    """
    if not isinstance(state, State):
        return state
    chans = list(session.get("channels") or [])
    marks = ",".join("?" * len(chans))
    peer = session["peer_id"]
    messages = state["messages"]
    if not skip:
        return state.narrowed(messages=messages.where(
            f"m.frm=? OR m.to_ IN (?,?,?) OR (m.to_ IS NULL AND m.surface='thread' AND m.channel IN ({marks}) "
            f"AND m.hlc>=?)",
            (peer, peer, session["session_id"], session["agent"], *chans, session.get("opened_hlc", ""))))
    # the same three conditions, each answered from an index alone (ids included): records are read
    # only for the messages kept
    keep = {o for (o,) in messages.select("SELECT ord FROM messages WHERE frm=?", (peer,))}
    for o, mid in messages.select("SELECT ord, id FROM messages WHERE to_ IN (?,?,?)",
                                  (peer, session["session_id"], session["agent"])):
        if mid not in skip:
            keep.add(o)
    for o, mid in messages.select(
            f"SELECT ord, id FROM messages WHERE to_ IS NULL AND surface='thread' AND channel IN ({marks}) "
            f"AND hlc>=?", (*chans, session.get("opened_hlc", ""))):
        if mid not in skip:
            keep.add(o)
    kept = messages.at(sorted(keep))
    state["work"].preload({m["work_id"] for m in kept if m["from"] != peer and isinstance(m.get("work_id"), str)})
    return state.narrowed(messages=kept)


def timer_units(state, sessions: list[dict]) -> list[dict] | None:
    """The work units ``deadlines.reminders_due`` / ``next_reminder_ms`` can report for ``sessions``: open units
    with a deadline whose target is one of them (table ``timers``), in state order.  None for a plain state
    dict (then they look at every unit, as they always did)."""
    if not isinstance(state, State) or not sessions:
        return None if not isinstance(state, State) else []
    from handoff.core import timers
    db = state._db
    peers, agents = {s["peer_id"] for s in sessions}, {s["agent"] for s in sessions}
    wids = [wid for wid, due, target, agent in db.execute("SELECT wid, due, target, agent FROM timers")
            if timers.may_concern((due, target, agent), peers, agents)]
    out = []
    for i in range(0, len(wids), 500):
        chunk = wids[i:i + 500]
        out += db.execute(f"SELECT seq, data FROM work WHERE wid IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return [marshal.loads(data) for _seq, data in sorted(out)]


def for_container(state, *, channel: str, thread_id: str | None = None, direct_id: str | None = None):
    """The state ``views.container_messages`` needs: only that thread's or room's messages."""
    if not isinstance(state, State):
        return state
    if thread_id is not None:
        msgs = state["messages"].where("m.channel=? AND m.thread=?", (channel, thread_id))
    else:
        msgs = state["messages"].where("m.channel=? AND m.direct=?", (channel, direct_id))
    return state.narrowed(messages=msgs)


def _sha1(data: bytes):
    import hashlib  # (only when files are hashed: kept off the warm read path)
    return hashlib.sha1(data)


def blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints), computed without git."""
    return _sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- the databases

_PARSED_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
CREATE TABLE IF NOT EXISTS parsed(path TEXT NOT NULL, blob TEXT NOT NULL, rec BLOB NOT NULL, okey BLOB,
    PRIMARY KEY(path, blob));
"""
_VIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
CREATE TABLE IF NOT EXISTS dirs(path TEXT PRIMARY KEY, mtime INTEGER);
CREATE TABLE IF NOT EXISTS files(src TEXT, path TEXT, dir TEXT, blob TEXT, problem TEXT,
    size INTEGER, mtime INTEGER, ino INTEGER, ctime INTEGER, PRIMARY KEY(path, src));
CREATE INDEX IF NOT EXISTS files_dir ON files(src, dir);
"""
# The folded state: dropped and rebuilt in bulk by a full fold (secondary indexes built after the rows).
_STATE_TABLES = {
    "events": "CREATE TABLE events(id TEXT PRIMARY KEY, ord INTEGER) WITHOUT ROWID",
    "dangling": "CREATE TABLE dangling(id TEXT PRIMARY KEY) WITHOUT ROWID",
    "peers": "CREATE TABLE peers(id TEXT PRIMARY KEY) WITHOUT ROWID",
    "messages": "CREATE TABLE messages(ord INTEGER PRIMARY KEY, id TEXT, blob TEXT, path TEXT, refused TEXT, "
                "frm TEXT, to_ TEXT, channel TEXT, surface TEXT, thread TEXT, direct TEXT, work TEXT, ikey TEXT, "
                "hlc TEXT, data BLOB)",
    "work": "CREATE TABLE work(wid TEXT PRIMARY KEY, seq INTEGER, box TEXT, open INTEGER, opener TEXT, data BLOB)",
    "boxes": "CREATE TABLE boxes(kind TEXT, key TEXT, seq INTEGER, data BLOB, PRIMARY KEY(kind, key))",
    "leases": "CREATE TABLE leases(ord INTEGER PRIMARY KEY, data BLOB)",
    "sessions": "CREATE TABLE sessions(seq INTEGER PRIMARY KEY, sid TEXT UNIQUE, peer TEXT, data BLOB)",
    # open units with a deadline (``timers.row``): what a watcher's reminder timers look at
    "timers": "CREATE TABLE timers(wid TEXT PRIMARY KEY, due INTEGER, target TEXT, agent TEXT) WITHOUT ROWID",
}
_STATE_INDEXES = (
    "CREATE INDEX messages_from ON messages(frm)",
    "CREATE INDEX messages_to ON messages(to_, id)",  # (id: for_inbox leaves acked messages out from the index)
    "CREATE INDEX messages_box ON messages(channel, thread, direct)",
    "CREATE INDEX messages_work ON messages(work)",
    "CREATE INDEX messages_ikey ON messages(ikey) WHERE ikey IS NOT NULL",
    # (for_inbox's broadcasts: without it the planner walks every to_-less message)
    # (to_ and surface too, though constant here: only then does SQLite answer from the index alone)
    "CREATE INDEX messages_bcast ON messages(channel, hlc, id, to_, surface) WHERE to_ IS NULL AND surface='thread'",
    "CREATE INDEX work_box ON work(box, open)",
    "CREATE INDEX work_opener ON work(opener)",
    "CREATE INDEX sessions_peer ON sessions(peer)",
)

_code_version_cache: list[str] = []


def code_version() -> str:
    """Changes whenever the code that parses or reduces events changes: then every cache is rebuilt."""
    if not _code_version_cache:
        import zlib  # (a checksum of the sources is enough here, and cheaper to load than hashlib)
        crc = zlib.crc32(f"{INDEX_FORMAT}:{marshal.version}:{sys.version_info[:2]}".encode())
        here = Path(__file__).resolve().parent
        names = [f"../{name}" for name in _CODE_MODULES] + sorted(p.name for p in here.glob("*.py"))
        for name in names:
            try:
                data = (here / name).read_bytes()
            except OSError:
                data = name.encode()
            crc = zlib.crc32(data, zlib.adler32(data, crc))
        _code_version_cache.append(f"{crc:08x}{len(names):02d}")
    return _code_version_cache[0]


def _boot_id() -> str | None:
    """This boot of the machine (Linux), or None where it cannot be told.

    The state file (``view-*``) is written without fsync when it is known: syncing its pages on every
    command cost more than the rest of the first read after a pull.  A process that dies still leaves a
    whole file (its writes are in the kernel), but an OS crash or power cut could leave some pages
    written and others not, so a state file is used only in the boot that created it and is folded
    again from the parse cache after a reboot.  The parse cache, costly to rebuild, is always synced.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as fh:
            value = fh.read(64).strip().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


_DB_SUFFIXES = ("", "-wal", "-shm", "-journal")  # (a journal left by a killed build goes with its file)


def _remove_db(path: Path) -> None:
    for suffix in _DB_SUFFIXES:
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass


def _remove_all(cache_dir: Path) -> None:
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        if name.endswith(tuple(f".sqlite3{suffix}" for suffix in _DB_SUFFIXES)):
            try:
                os.unlink(cache_dir / name)
            except OSError:
                pass


def _open(ws: Place) -> _Index:
    """This thread's index of ``ws`` (a SQLite connection must not be shared by threads at once)."""
    import threading
    indexes = ws.__dict__.setdefault("_indexes", {})
    key = threading.get_ident()
    idx = indexes.get(key)
    if idx is None:
        if len(indexes) > 32:  # threads come and go (watchers, servers): forget the oldest
            indexes.pop(next(iter(indexes)))
        idx = indexes[key] = _Index(ws)
    return idx


class _Index:
    def __init__(self, ws: Place):
        self.ws = weakref.proxy(ws)  # (no cycle: the connection closes as soon as the Workspace goes)
        self.root = ws.root
        self.dir = ws.paths.shared / "cache"
        import zlib
        path = str(ws.paths.worktree).encode()
        key = f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}"
        self.view_path = self.dir / f"view-{INDEX_FORMAT}-{key}.sqlite3"
        self.parsed_path = self.dir / f"parsed-{INDEX_FORMAT}.sqlite3"
        self.lock_path = self.dir / f"view-{key}.lock"
        self.db: sqlite3.Connection | None = None
        self.wal_pending: list[str] = []  # files still in rollback-journal mode (see ``_use_wal``)
        self.boot: str | None = None

    # ---------------------------------------------------------------- connection
    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except Exception:
                pass
            self.db = None

    def _connect(self) -> sqlite3.Connection:
        if self.db is None:
            try:
                self.db = self._connect_files()
            except (sqlite3.Error, OSError) as exc:
                self.close()
                kind = trouble(exc) if isinstance(exc, sqlite3.Error) else "unusable"
                if kind == "damaged":
                    self._repair(exc)  # corrupt, truncated, not a database: it is only a cache
                if kind in ("damaged", "gone"):
                    try:
                        self._connect_files()
                    except (sqlite3.Error, OSError):
                        self.close()
                if self.db is None:
                    self.db = self._connect_memory()  # unwritable, full or locked: correct, only not cached
            weakref.finalize(self, self.db.close)  # closed when the Workspace (and this index) goes
        return self.db

    def _connect_files(self) -> sqlite3.Connection:
        """One connection to this worktree's state file with the shared parse cache attached as ``p``.

        Either file is started again when it was written by another version of the code, or (for the
        state) against another parse cache, or (for the state, see ``_boot_id``) since the last boot.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        version = code_version()
        boot = _boot_id()
        want_view = {"code": version} if boot is None else {"code": version, "boot": boot}
        want_view["admins"] = ",".join(self._admins())  # (the fold's session-close rule reads them)
        for _attempt in range(3):
            # (the long wait until the files are known to be in WAL mode: see ``_use_wal``)
            db = sqlite3.connect(str(self.view_path), timeout=FIRST_BUILD_BUSY_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("ATTACH DATABASE ? AS p", (str(self.parsed_path),))
                token = self._check(db, "p.", _PARSED_SCHEMA, {"code": version}, "token")
                if token is None:
                    db.close()
                    _remove_db(self.parsed_path)
                    continue
                fresh = self._check(db, "main.", _VIEW_SCHEMA, dict(want_view, parsed=token), None)
                if fresh is None:
                    db.close()
                    _remove_db(self.view_path)
                    continue
                if fresh == "created":
                    _create_state_tables(db)
                self.boot = boot
                self.wal_pending = [s for s in ("main", "p")
                                    if db.execute(f"PRAGMA {s}.journal_mode").fetchone()[0] != "wal"]
                self._retry_wal(db)
                self._settings(db)
                self.db = db
                _forget_old_views(self.dir, self.view_path)
                return db
            except BaseException:
                db.close()
                raise
        raise sqlite3.DatabaseError("cannot set up the index files")

    @staticmethod
    def _check(db: sqlite3.Connection, schema_name: str, ddl: str, want: dict, token_key: str | None):
        """Set up one file on first use; None when it belongs to another version (start it again).

        Returns the file's token (``token_key``), "created", or "ok".
        """
        def read_meta() -> dict:
            try:
                return dict(db.execute(f"SELECT k, v FROM {schema_name}meta").fetchall())
            except sqlite3.OperationalError:
                return {}

        meta = read_meta()
        if not meta:  # (a new file starts in rollback-journal mode: see ``_use_wal``)
            db.execute("BEGIN IMMEDIATE")
            try:
                meta = read_meta()
                created = not meta
                if created:  # (nobody set it up meanwhile)
                    for stmt in ddl.strip().split(";"):
                        if stmt.strip():
                            db.execute(stmt.replace("EXISTS ", f"EXISTS {schema_name}", 1))
                            # (an index's table is named without a schema: it lives in the index's schema)
                    meta = dict(want)
                    if token_key:
                        meta[token_key] = os.urandom(8).hex()
                    db.executemany(f"INSERT INTO {schema_name}meta VALUES (?, ?)", list(meta.items()))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if created and not token_key:
                return "created"
        if any(meta.get(k) != v for k, v in want.items()):
            return None
        return meta.get(token_key) if token_key else "ok"

    def _admins(self) -> list[str]:
        """``identity.admins`` of the config: agents whose session-close the fold applies to any session."""
        from handoff.core.checks import admins_of
        return admins_of(self.ws.config)

    def _connect_memory(self) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(_VIEW_SCHEMA)
        db.execute("ATTACH DATABASE ':memory:' AS p")
        db.executescript(_PARSED_SCHEMA.replace("EXISTS ", "EXISTS p."))
        _create_state_tables(db)
        self.lock_path = None
        self.wal_pending = []
        return db

    # ---------------------------------------------------------------- reading
    def state(self) -> State:
        for attempt in range(3):
            try:
                return self._fresh_state()
            except (sqlite3.Error, ValueError, EOFError, TypeError, KeyError) as exc:
                kind = trouble(exc)
                if kind is None:
                    raise
                if attempt == 2:
                    if not isinstance(exc, sqlite3.Error):
                        raise  # (bytes still unreadable in a cache built afresh: a bug, not damage)
                    raise unreadable(exc) from None
                self.close()
                if kind == "damaged":
                    self._repair(exc)  # not a database, or a damaged one: it is only a cache
                elif kind != "gone" or attempt:
                    # A full disk, a read-only or locked-up cache (or files gone twice): answer from memory
                    # this time, delete nothing (see ``trouble``).
                    self.db = self._connect_memory()
        raise AssertionError("unreachable")

    def _repair(self, exc: BaseException) -> None:
        """Drop both files (damaged: they are only a cache) and say so."""
        _remove_db(self.view_path)
        _remove_db(self.parsed_path)
        note_rebuilt(self.dir, exc)

    def _retry_wal(self, db: sqlite3.Connection, wait_ms: int = 0) -> None:
        """Switch files still in rollback-journal mode to WAL, once their first build is committed (until
        then the switch would make that build write every page twice); each new read tries again, so a
        long-lived process (a watcher) does not hold others to the rollback journal's locking."""
        if self.wal_pending and _meta(db, "gen") is not None:
            try:
                self.wal_pending = _use_wal(db, self.wal_pending, wait_ms)
            finally:
                self._settings(db)  # (syncing and waiting for the modes the files are in now)

    def _settings(self, db: sqlite3.Connection) -> None:
        """Syncing and waiting as each file's journal mode wants them.

        The parse cache is synced: ``NORMAL`` in WAL mode, where a power cut can lose the last commits but
        never damage the file; ``FULL`` in rollback-journal mode, where ``NORMAL`` could.  The state file
        is not synced where the boot can be told (see ``_boot_id``).  Until both files are in WAL mode, a
        reader may wait for a whole first build (see ``_use_wal``).
        """
        pending = self.wal_pending
        db.execute("PRAGMA synchronous=" + ("OFF" if self.boot is not None else "FULL" if "main" in pending
                                             else "NORMAL"))
        db.execute("PRAGMA p.synchronous=" + ("FULL" if "p" in pending else "NORMAL"))
        db.execute(f"PRAGMA busy_timeout={FIRST_BUILD_BUSY_MS if pending else BUSY_MS}")

    def _fresh_state(self) -> State:
        db = self._connect()
        if db.in_transaction:
            db.execute("COMMIT")  # a new read: end the previous snapshot
        self._retry_wal(db)
        db.execute("BEGIN")
        plan = self._plan(db)
        if plan is None:
            return self._make_state(db)
        db.execute("COMMIT")
        with _maybe_lock(self.lock_path):
            db.execute("BEGIN IMMEDIATE")
            try:
                if _meta(db, "gen") != plan.gen:
                    plan = self._plan(db)  # someone folded meanwhile: look again
                if plan is not None:
                    with _gc_paused():
                        self._apply(db, plan)
                db.execute("COMMIT")
                _trace("commit")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if self.wal_pending:  # (readers that waited for this build may hold the file a moment longer)
            self._retry_wal(db, wait_ms=2000)
            _trace("wal")
        db.execute("BEGIN")
        return self._make_state(db)

    def _make_state(self, db: sqlite3.Connection) -> State:
        """The state as of the open read transaction, which stays open while the state is read (one
        snapshot).  Not so for a file still in rollback-journal mode: there a held read would stall every
        writer (a long-lived process would for minutes), so each read of the state is its own snapshot."""
        if self.wal_pending and db.in_transaction:
            db.execute("COMMIT")
        state = State(db, marshal.loads(_meta(db, "acc")))  # (read once per command)
        state._owner = self  # the connection lives as long as a state that reads through it
        return state

    def records(self) -> list[dict]:
        """The work tree's records (extra sources' records come from their own modules)."""
        self.state()
        db = self._connect()
        rows = db.execute("SELECT f.path, f.problem, q.path, q.rec FROM files f LEFT JOIN p.parsed q "
                          "ON q.path = f.path AND q.blob = f.blob WHERE f.src='' ORDER BY f.path").fetchall()
        return [_record(_py(path), problem, _py(ppath), rec) for path, problem, ppath, rec in rows if problem or rec]

    def records_for(self, entries: list[tuple[str, str]], read) -> list[dict]:
        db = self._connect()
        have = _lookup(db, entries)
        missing = [pair for pair in dict.fromkeys(entries) if pair not in have]
        if missing:
            data = read(sorted({b for _p, b in missing}))
            parsed = _parse_items([(p, data[b]) for p, b in missing if b in data])
            with _write(db):
                _store_parsed(db, parsed)
            have.update({(p, b): r for p, b, r in parsed})
        return [_record(path, None, path, have[path, b]) for path, b in entries if (path, b) in have]

    def seed(self, items: list[tuple[str, bytes, dict]]) -> None:
        """Parse and keep the files we just wrote, so the next refresh finds them in the cache."""
        db = self._connect()
        rows = []
        for rel, data, _ev in items:
            rec = reducer.decode(rel, data)
            rows.append((blob_id(data), rel, marshal.dumps(rec), _okey(rec)))
        with _write(db):
            _store_parsed(db, [(rel, b, rec, key) for b, rel, rec, key in rows])

    # ---------------------------------------------------------------- planning
    def _plan(self, db: sqlite3.Connection) -> _Plan | None:
        """What changed since the view was last folded (None: nothing)."""
        _trace("start")
        plan = _Plan()
        plan.gen = _meta(db, "gen")
        now = time.time_ns()
        if plan.gen is None:
            plan.cold = True
            plan.scan = _scan_tree(self.root, {}, now)
        else:
            known_dirs = {_py(p): m for p, m in db.execute("SELECT path, mtime FROM dirs")}
            plan.scan = _scan_tree(self.root, known_dirs, now, db)
            plan.stamps = marshal.loads(_meta(db, "stamps") or marshal.dumps({}))
        plan.sources = []
        for fn in SOURCES:
            try:
                src = fn(self.ws)
            except Exception:
                src = None
            if isinstance(src, Source):
                plan.sources.append(src)
            elif src:
                plan.sources.extend(src)
        plan.new_stamps = {s.name: s.stamp for s in plan.sources}
        if not plan.cold and not plan.scan.changed and plan.new_stamps == plan.stamps:
            return None
        return plan

    # ---------------------------------------------------------------- applying
    def _apply(self, db: sqlite3.Connection, plan: _Plan) -> None:
        _trace("scan")
        scan = plan.scan
        refold = plan.cold or bool(scan.gone) or bool(scan.gone_dirs)
        file_rows = []
        new_pairs: list[tuple[str, str]] = []  # (path, blob) of files the state does not hold yet
        fresh: dict[str, dict] = {}  # blob -> record parsed just now
        need = [(rel, st) for rel, st, problem in scan.present if not problem]
        for rel, _st, problem in scan.present:
            if problem:
                file_rows.append(("", rel, _dirname(rel), None, problem, 0, 0, 0, 0))
                refold = True
        rechecks = sum(1 for rel, _st in need if rel in scan.prev)
        on_files = None
        if plan.cold:  # the file table is written as the files come back from the parse workers
            db.execute("DELETE FROM files")
            db.execute("DELETE FROM dirs")

            def on_files(chunk: list[tuple]) -> None:
                _insert_files(db, [("", rel, _dirname(rel), None, problem, 0, 0, 0, 0) if problem else
                                   ("", rel, _dirname(rel), blob, None) + _stat_key(st, scan.now)
                                   for rel, st, blob, problem in chunk])
        parsed_files = _read_and_parse(db, self.root, need, rechecks, on_files)
        _trace(f"read+parse {len(need)}")
        for rel, st, blob, rec, problem in parsed_files:  # (none when on_files took them: a cold build)
            if problem:
                file_rows.append(("", rel, _dirname(rel), None, problem, 0, 0, 0, 0))
                refold = True
                continue
            if rec is not None:
                fresh[blob] = rec
            file_rows.append(("", rel, _dirname(rel), blob, None) + _stat_key(st, scan.now))
            before = scan.prev.get(rel)
            if before is None:
                new_pairs.append((rel, blob))
            elif before != blob:
                refold = True  # a file changed under the same name
        del parsed_files
        removed: list[tuple[str, str]] = [("", rel) for rel in scan.gone]
        # extra sources (remote-tracking branches...): whole lists, diffed by blob id.  A work-tree file
        # hides a source's entry with the same path; an entry already folded (same path and blob) from
        # elsewhere is the same event, which the reducer would drop anyway.
        if new_pairs and plan.stamps and db.execute(
                "SELECT 1 FROM files WHERE src!='' LIMIT 1").fetchone() and any(db.execute(
                "SELECT 1 FROM files WHERE path=? AND src!='' LIMIT 1", (p,)).fetchone() for p, _b in new_pairs):
            refold = True  # a new work-tree file hides an entry that may have been folded
        local_now = {rel for rel, _st, _problem in scan.present}
        gone_now = set(scan.gone)

        def hidden(p: str) -> bool:
            return p in local_now or (p not in gone_now and db.execute(
                "SELECT 1 FROM files WHERE path=? AND src='' LIMIT 1", (p,)).fetchone() is not None)

        for name in set(plan.stamps) - {s.name for s in plan.sources}:
            refold = True
            db.execute("DELETE FROM files WHERE src=?", (name,))
        for src in plan.sources:
            if plan.stamps.get(src.name) == src.stamp:
                continue
            now = dict(src.entries())
            old = dict(db.execute("SELECT path, blob FROM files WHERE src=?", (src.name,)).fetchall())
            for path, b in old.items():
                if now.get(path) != b:
                    removed.append((src.name, path))
                    refold = True
            added = [(p, b) for p, b in now.items() if old.get(p) != b]
            have = _lookup(db, added)
            missing = [pair for pair in added if pair not in have]  # (every file row has its own parse row)
            if missing:
                data = src.read(sorted({b for _p, b in missing}))
                parsed = _parse_items([(p, data[b]) for p, b in missing if b in data])
                _store_parsed(db, parsed)
                fresh.update({b: marshal.loads(r) for _p, b, r in parsed if b not in fresh})
            batch = set(new_pairs)
            for p, b in added:
                file_rows.append((src.name, p, "@", b, None, 0, 0, 0, 0))
                if (p, b) in batch or hidden(p) or db.execute(
                        "SELECT 1 FROM files WHERE path=? AND blob=? LIMIT 1", (p, b)).fetchone():
                    continue
                batch.add((p, b))
                new_pairs.append((p, b))

        # the file table, exactly as scanned
        for d in scan.gone_dirs:
            db.execute("DELETE FROM files WHERE src='' AND dir=?", (_sq(d),))
            db.execute("DELETE FROM dirs WHERE path=?", (_sq(d),))
        db.executemany("DELETE FROM files WHERE src=? AND path=?", [(src, _sq(p)) for src, p in removed])
        _insert_files(db, file_rows)
        db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?)", [(_sq(d), m) for d, m in scan.dirs.items()])
        del file_rows
        _trace("file table")

        # the state: fold the new records on, or fold everything again
        if not refold:
            records = _records_of(db, new_pairs, fresh)
            if _extend(db, records, plan.new_stamps, dict(new_pairs), self._admins()):
                STATS["extend"] += 1
                _trace(f"extend {len(records)}")
                return
        STATS["refold"] += 1
        del fresh, need, new_pairs, local_now  # (everything is in the parse cache: the fold reads it back)
        scan.present = []
        _refold(db, plan.new_stamps, self._admins())
        _trace("refold")


class _Plan:
    cold = False
    gen = None
    scan: _Scan
    sources: list = []
    stamps: dict = {}
    new_stamps: dict = {}


def _sq(path):
    """A path as SQLite can store it: names that are not UTF-8 (surrogate-escaped) go in as bytes."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")


def _py(value):
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _meta(db: sqlite3.Connection, key: str):
    row = db.execute("SELECT v FROM main.meta WHERE k=?", (key,)).fetchone()
    return row[0] if row else None


def _create_state_tables(db: sqlite3.Connection, drop: bool = False) -> None:
    for name, ddl in _STATE_TABLES.items():
        if drop:
            db.execute(f"DROP TABLE IF EXISTS {name}")
        db.execute(ddl.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS "))
    for ddl in _STATE_INDEXES:
        db.execute(ddl.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "))


def _use_wal(db: sqlite3.Connection, schemas: list[str], wait_ms: int = 0) -> list[str]:
    """Switch these attached files to WAL now if nobody else is using them; return those left as they were.

    A new cache file is first filled in SQLite's rollback-journal mode: a cold build writes each page
    once, where WAL writes it twice (to the log, then back into the file at the checkpoint that ends
    the build: ~1.2 s of a 20 s build at 100,000 events).  Its rollback journal holds only the empty
    file's few pages, so a build cut short is still undone whole.  Once the build is committed the
    file turns to WAL, so readers never wait for a writer.  The switch needs the file to itself: it is
    tried waiting at most ``wait_ms``, and again by each later read if someone was reading.  Until
    then a reader may have to wait for the whole first build (the builder holds the file once its
    pages spill from SQLite's cache), so it waits up to ``FIRST_BUILD_BUSY_MS``, not ``BUSY_MS``: a
    build of 400,000 events takes about a minute here.  A new connection cannot tell the mode before
    it reads, so it starts with the long wait and shortens it once it knows.  (A builder that dies
    frees the file at once; one that hangs would hold others on the view's file lock anyway.)
    """
    left = []
    db.execute(f"PRAGMA busy_timeout={int(wait_ms)}")  # (the caller sets it back: ``_Index._settings``)
    for schema in schemas:
        try:
            mode = db.execute(f"PRAGMA {schema}.journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError:
            mode = None
        if mode != "wal":
            left.append(schema)
    return left


def _forget_old_views(cache_dir: Path, keep: Path) -> None:
    """Keep the cache from growing with state files of worktrees that are gone."""
    try:
        views = [cache_dir / n for n in os.listdir(cache_dir) if n.startswith("view-") and n.endswith(".sqlite3")]
    except OSError:
        return
    if len(views) <= MAX_VIEWS:
        return
    views.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)
    for path in views[MAX_VIEWS:]:
        if path != keep:
            _remove_db(path)


class _gc_paused:
    """No cyclic garbage collection while folding: a fold makes hundreds of thousands of small objects
    and no cycles, and the collector's passes over them cost ~8 % of a full fold (forked parse workers
    inherit the pause)."""

    def __enter__(self):
        import gc
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            import gc
            gc.enable()
        return False


class _maybe_lock:
    def __init__(self, path: Path | None):
        self.path = path
        self.cm = None

    def __enter__(self):
        if self.path is not None:
            self.cm = store.file_lock(self.path)
            self.cm.__enter__()

    def __exit__(self, *exc):
        if self.cm is not None:
            return self.cm.__exit__(*exc)
        return False


class _write:
    """A short write transaction of its own (it ends the connection's read snapshot first)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, et, ev, tb):
        self.db.execute("ROLLBACK" if et else "COMMIT")
        return False


# --------------------------------------------------------------------------- records


def _record(path: str, problem: str | None, ppath: str | None, rec: bytes | None) -> dict:
    if problem:
        return {"path": path, "error": {"reason_code": "malformed", "message": problem}}
    record = marshal.loads(rec)
    return record if ppath == path else _redecode(path, record)


def _redecode(path: str, record: dict) -> dict:
    """The same bytes seen under another path: only the path checks can differ."""
    if "event" not in record:
        return dict(record, path=path)
    from handoff.core.model import EventError, check_name
    try:
        check_name(path, record["event"])
    except EventError as exc:
        return {"path": path, "error": {"reason_code": exc.reason_code, "message": exc.message}}
    return {"path": path, "event": record["event"]}


def _parsed_at(db: sqlite3.Connection, paths, columns: str, where: str = "1") -> Iterator[tuple]:
    """Parse-cache rows (``columns``, path first) of these paths, 500 paths a query."""
    keys = list(dict.fromkeys(_sq(p) for p in paths))
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for row in db.execute(f"SELECT path, {columns} FROM p.parsed WHERE {where} AND path IN "
                              f"({','.join('?' * len(chunk))})", chunk):
            yield (_py(row[0]),) + row[1:]


def _lookup(db: sqlite3.Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    """(path, blob) -> marshalled record, for the pairs the parse cache holds."""
    want = set(pairs)
    return {(p, b): r for p, b, r in _parsed_at(db, (p for p, _b in pairs), "blob, rec") if (p, b) in want}


def _records_of(db, pairs: list[tuple[str, str]], fresh: dict[str, dict]) -> list[dict]:
    known = _lookup(db, [(p, b) for p, b in pairs if b not in fresh])
    out = []
    for path, b in pairs:
        if b in fresh:
            rec = fresh[b]
            out.append(rec if rec["path"] == path else _redecode(path, rec))
        elif (path, b) in known:
            out.append(_record(path, None, path, known[path, b]))
    return out


# --------------------------------------------------------------------------- scanning the work tree

_TRACE = os.environ.get("HANDOFF_INDEX_TRACE")
_trace_last = [time.perf_counter(), time.process_time()]


def _trace(what: str) -> None:
    """HANDOFF_INDEX_TRACE=1: where a refresh spends its time (wall, and this process's CPU), on stderr."""
    if _TRACE:
        now = (time.perf_counter(), time.process_time())
        sys.stderr.write(f"index: {what:24s} {1000 * (now[0] - _trace_last[0]):8.1f} ms wall "
                         f"{1000 * (now[1] - _trace_last[1]):8.1f} ms cpu\n")
        _trace_last[:] = now


class _Scan:
    def __init__(self, now: int):
        self.now = now
        self.dirs: dict[str, int] = {}  # relisted directories -> mtime to remember (0: racy, relist next time)
        self.gone_dirs: list[str] = []
        self.present: list[tuple[str, tuple | None, str | None]] = []  # new or changed files
        self.prev: dict[str, str] = {}  # the blob each changed file had before (absent: a new file)
        self.gone: list[str] = []  # files that disappeared
        self.changed = False


def _dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


def _stat_tuple(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _racy(ns: int, now: int) -> bool:
    """Too close to ``now`` for a later change to be sure to show in the timestamp (git's "racy" rule).

    A file system that keeps only whole seconds (or two) could give a change made a moment after we
    looked the same timestamp: 3 s covers it.  One that keeps finer timestamps (any that is not a whole
    second shows it) stamps from a clock that moves every few milliseconds: 200 ms is plenty, and a
    second read soon after a pull does not hash the pulled files again.
    """
    return ns >= now - (RACY_NS if ns % 1_000_000_000 == 0 else FINE_RACY_NS)


def _stat_key(st: tuple | None, now: int) -> tuple[int, int, int, int]:
    if st is None:
        return (0, -1, 0, 0)
    size, mtime, ino, ctime = st
    if _racy(mtime, now) or _racy(ctime, now):
        mtime = -1  # too fresh to vouch for: hash it again next time
    return (size, mtime, ino, ctime)


def _is_dir(st: os.stat_result) -> bool:
    import stat as _stat
    return _stat.S_ISDIR(st.st_mode)


def _scan_tree(root: Path, known_dirs: dict[str, int], now: int, db=None) -> _Scan:
    """Compare ``root/events`` with what the index saw, listing only directories whose mtime moved.

    On a cold scan (no ``db``) files are not stat'ed here: the workers that read them do it.
    """
    scan = _Scan(now)
    base = "events"
    todo: list[str] = []
    seen: set[str] = set()
    if base not in known_dirs:
        todo.append(base)
    top = f"{root}/"  # (string paths: ~160 directories at 100,000 events, pathlib would double the cost)
    for d, mtime in known_dirs.items():
        try:
            st = os.stat(top + d) if d == base else os.lstat(top + d)
        except OSError:
            st = None
        if st is None or not _is_dir(st):
            scan.gone_dirs.append(d)
            scan.changed = True
            continue
        if mtime == 0 or st.st_mtime_ns != mtime:
            todo.append(d)
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        scan.changed = True
        try:
            before = os.stat(root / d).st_mtime_ns
            it = os.scandir(root / d)
        except (FileNotFoundError, NotADirectoryError):
            if d in known_dirs and d not in scan.gone_dirs:
                scan.gone_dirs.append(d)
            continue
        entries: dict[str, tuple[tuple | None, str | None]] = {}
        with it:
            for entry in it:
                name = entry.name
                if name.startswith("."):
                    continue
                rel = f"{d}/{name}"
                if entry.is_symlink():
                    entries[rel] = (None, "symlink: not read")
                elif entry.is_dir(follow_symlinks=False):
                    if rel not in known_dirs:
                        todo.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    if name.endswith(".yaml"):
                        entries[rel] = (_stat_tuple(entry.stat(follow_symlinks=False)) if db is not None
                                        else None, None)
                else:
                    entries[rel] = (None, "not a regular file: not read")
        scan.dirs[d] = 0 if _racy(before, now) else before
        old = {}
        if db is not None and d in known_dirs:
            old = {_py(p): (b, pr, (sz, mt, ino, ct)) for p, b, pr, sz, mt, ino, ct in db.execute(
                "SELECT path, blob, problem, size, mtime, ino, ctime FROM files WHERE src='' AND dir=?", (_sq(d),))}
        for rel in old:
            if rel not in entries:
                scan.gone.append(rel)
        for rel, (st_, problem) in entries.items():
            prev = old.get(rel)
            if problem:
                if prev is None or prev[1] != problem:
                    scan.present.append((rel, None, problem))
                    if prev is not None:
                        scan.gone.append(rel)
                continue
            if prev is not None and prev[1] is None and prev[2][1] != -1 and prev[2] == st_:
                continue  # unchanged
            if prev is not None:
                if prev[1] is not None:
                    scan.gone.append(rel)  # it was a problem entry: its diagnostic goes
                else:
                    scan.prev[rel] = prev[0]
            scan.present.append((rel, st_, None))
    if scan.gone_dirs:
        gone = set(scan.gone_dirs)
        for d in known_dirs:  # sub-directories of a vanished directory vanish too
            if d not in gone and any(d.startswith(g + "/") for g in gone):
                gone.add(d)
        scan.gone_dirs = sorted(gone)
        if db is not None:
            for g in scan.gone_dirs:
                scan.gone.extend(_py(r[0]) for r in db.execute("SELECT path FROM files WHERE src='' AND dir=?",
                                                               (_sq(g),)))
    return scan


# --------------------------------------------------------------------------- reading and parsing


def _read(path) -> tuple[tuple[int, int, int, int], bytes]:
    """The file's stat (taken on the open file) and its bytes, at most one byte more than the size cap.

    (A buffered ``read(cap + 1)`` allocates the whole cap every time: sized reads are much faster.)
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))  # (listed as a file: never a link)
    try:
        st = os.fstat(fd)
        want = min(st.st_size, store.MAX_FILE_BYTES) + 1
        chunks = []
        while want > 0:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunks) == 1 and len(chunk) == st.st_size < want:
                break  # all of it, as fstat said: no second call just to see the end
            want -= len(chunk)
        return _stat_tuple(st), chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def _insert_files(db: sqlite3.Connection, rows: list[tuple]) -> None:
    """Rows of the file table: (src, path, dir, blob, problem, size, mtime, ino, ctime)."""
    rows.sort(key=lambda r: (r[1], r[0]))  # (in key order the b-trees grow at one end: less work)
    db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                   [(r[0], _sq(r[1]), _sq(r[2])) + r[3:] for r in rows])


def _read_and_parse(db: sqlite3.Connection, root: Path, need: list[tuple[str, tuple | None]], rechecks: int = 0,
                    on_files: Callable[[list[tuple]], None] | None = None):
    """(rel, stat, blob, record or None if the parse cache has it, problem) for each file.

    With ``on_files``, each batch's (rel, stat, blob, problem) go to it as they are read instead (while
    the workers parse the next ones), and nothing is returned.

    Newly parsed records go into the parse cache as they arrive; they are handed back only for a few
    thousand files (a fold of many files reads them back from the cache in event order: holding
    100,000 parsed events at once is what made a cold build big).  ``rechecks`` of them were seen
    before (touched, or too fresh to trust last time): they are likely only hashed, not parsed.
    """
    if not need:
        return []
    out = []
    keep = len(need) <= KEEP_PARSED

    def take(results):
        parsed = []
        for rel, st, blob, rec, okey, problem in results:
            if rec is not None:
                STATS["parsed"] += 1
                parsed.append((rel, blob, rec, okey))
        _store_parsed(db, parsed)
        if on_files is not None:
            on_files([(rel, st, blob, problem) for rel, st, blob, _rec, _okey, problem in results])
            return
        for rel, st, blob, rec, _okey, problem in results:
            out.append((rel, st, blob, marshal.loads(rec) if keep and rec is not None else None, problem))

    workers = _workers(len(need) - rechecks)
    if workers > 1:
        known = set(_parsed_at(db, (rel for rel, _st in need), "blob", "okey IS NOT NULL"))  # (events held)
        _parse_parallel(root, need, known, workers, take)
        return out
    results = []
    hashed = []
    for rel, st in need:
        try:
            st, data = _read(f"{root}/{rel}")
        except OSError as exc:
            results.append((rel, st, None, None, None, f"unreadable: {exc}"))
            continue
        hashed.append((rel, st, blob_id(data), data))
    have = _lookup(db, [(h[0], h[2]) for h in hashed])
    todo = []
    for rel, st, blob, data in hashed:
        if (rel, blob) in have:
            results.append((rel, st, blob, None, None, None))
        else:
            todo.append((rel, st, blob, data))
    encoded = _encode_all([(rel, data) for rel, _st, _blob, data in todo])
    results.extend((rel, st, blob, rec, okey, None) for (rel, st, blob, _data), (rec, okey) in zip(todo, encoded))
    take(results)
    return out


def _encode_all(items: list[tuple[str, bytes]]) -> list[tuple[bytes, bytes | None]]:
    """``_encode`` of each (path, bytes); a batch too small for a pool of workers but big enough to split
    is shared with one forked child (the parent does the first half, the child the second)."""
    half = len(items) // 2
    if len(items) < SPLIT_MIN or not _may_fork():
        return [_encode(rel, data) for rel, data in items]
    theirs = _forked(lambda: marshal.dumps([_encode(rel, data) for rel, data in items[half:]]))
    _trace(f"parse split {half}+{len(items) - half}")
    try:
        mine = [_encode(rel, data) for rel, data in items[:half]]
    finally:
        rest = theirs()  # (always waited for: no child is left behind)
    if rest is not None:
        try:
            rest = marshal.loads(rest)
        except (ValueError, EOFError, TypeError):
            rest = None
    if not isinstance(rest, list) or len(rest) != len(items) - half:
        rest = [_encode(rel, data) for rel, data in items[half:]]  # the child failed: do its half here
    return mine + rest


def _fork_safe() -> bool:
    """No other thread that a fork could catch holding a lock."""
    threading = sys.modules.get("threading")  # (never imported: no other thread)
    return hasattr(os, "fork") and (threading is None or threading.active_count() == 1)


def _may_fork() -> bool:
    """A second core to use, and a fork is safe."""
    return _cpus() > 1 and _fork_safe()


def _forked(work: Callable[[], bytes]) -> Callable[[], bytes | None]:
    """Run ``work`` in a forked child now; the returned call waits for its bytes (None if it failed)."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return lambda: None
    if pid == 0:  # the child: compute, write, leave at once (no finalizers: the parent's files stay its own)
        code = 1
        try:
            os.close(r)
            data = memoryview(work())
            while data:
                data = data[os.write(w, data):]
            code = 0
        finally:
            os._exit(code)
    os.close(w)

    def wait() -> bytes | None:
        chunks = []
        try:
            while True:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(r)
            _pid, status = os.waitpid(pid, 0)
        return b"".join(chunks) if os.waitstatus_to_exitcode(status) == 0 else None
    return wait


_known_files: set = set()  # (path, blob) pairs whose events the parse cache holds (for the workers)


def _init_worker(known: set) -> None:
    global _known_files
    _known_files = known


def _parse_chunk(args):
    root, items = args
    out = []
    for rel, st in items:
        try:
            st, data = _read(f"{root}/{rel}")
        except OSError as exc:
            out.append((rel, st, None, None, None, f"unreadable: {exc}"))
            continue
        blob = blob_id(data)
        if (rel, blob) in _known_files:
            out.append((rel, st, blob, None, None, None))
        else:
            out.append((rel, st, blob, *_encode(rel, data), None))
    return out


def _encode(rel: str, data: bytes) -> tuple[bytes, bytes | None]:
    """What the parse cache keeps of one file: the marshalled record and its ordering key."""
    rec = reducer.decode(rel, data)
    return marshal.dumps(rec), _okey(rec)


def _okey(rec: dict) -> bytes | None:
    """The little a full fold needs to order an event without loading it: (id, hlc, after, opens a session).

    None for a record that is not an event (its diagnostic is read from the record itself).
    """
    ev = rec.get("event")
    if ev is None:
        return None
    return marshal.dumps((ev["id"], ev["hlc"], tuple(ev.get("after") or ()), ev["kind"] == "session-open"))


def _parse_items(items: list[tuple[str, bytes]]) -> list[tuple[str, str, bytes]]:
    """(path, blob, marshalled record) for in-memory (path, bytes) pairs."""
    return [(rel, blob_id(data), marshal.dumps(reducer.decode(rel, data))) for rel, data in items]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _workers(n: int) -> int:
    if n < PARALLEL_MIN:
        return 1
    return max(1, min(_cpus(), n // 500))


def _parse_parallel(root: Path, need, known: set, workers: int, take) -> None:
    """Read, hash and parse on every core, handing results to ``take`` as they come.

    A progress line shows on a terminal when it takes more than a second.
    """
    import multiprocessing

    global _known_files
    progress = _Progress(len(need))
    fork = _fork_safe() and "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    size = max(50, min(500, len(need) // (workers * 16) or 50))
    chunks = [(str(root), need[i:i + size]) for i in range(0, len(need), size)]
    _known_files = known  # inherited by forked workers; spawned ones get it through the initializer
    try:
        with ctx.Pool(workers, initializer=None if fork else _init_worker, initargs=() if fork else (known,)) as pool:
            for part in pool.imap_unordered(_parse_chunk, chunks):
                take(part)
                progress.advance(len(part))
    finally:
        _known_files = set()
        progress.done()


def _store_parsed(db: sqlite3.Connection, parsed: list[tuple]) -> None:
    """Keep (path, blob, marshalled record[, ordering key]) in the parse cache (the key is made if absent).

    Rows are keyed by (path, blob): the path is part of what a record says (its name is checked against
    its content), and new files' paths sort after the old ones, so new rows land at the end of the
    index instead of on a random page each (which made syncing the cache cost more than parsing).
    """
    db.executemany("INSERT INTO p.parsed VALUES (?, ?, ?, ?) ON CONFLICT(path, blob) DO UPDATE SET "
                   "rec=excluded.rec, okey=excluded.okey",
                   [(_sq(x[0]), x[1], x[2], x[3] if len(x) > 3 else _okey(marshal.loads(x[2]))) for x in parsed])


class _Progress:
    """A progress line on stderr, only on a terminal and only once the work has taken a second."""

    def __init__(self, total: int):
        self.total = total
        self.count = 0
        self.start = time.monotonic()
        self.shown = False
        self.tty = total > 0 and sys.stderr.isatty()

    def advance(self, n: int) -> None:
        self.count += n
        if not self.tty:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < 1.0:
            return
        self.shown = True
        pct = 100 * self.count // max(1, self.total)
        bar = "#" * (pct // 4)
        sys.stderr.write(f"\rhandoff: indexing events [{bar:<25}] {self.count:,}/{self.total:,} ({elapsed:.0f}s)")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


# --------------------------------------------------------------------------- folding


class _Rows(dict):
    """A dict that loads missing keys from a table on ``get``; what it holds afterwards was touched."""

    def __init__(self, load: Callable[[str], dict | None]):
        super().__init__()
        self._load = load
        self._absent: set = set()
        self.loaded: set = set()

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self._absent:
            return default
        value = self._load(key)
        if value is None:
            self._absent.add(key)
            return default
        dict.__setitem__(self, key, value)
        self.loaded.add(key)
        return value

    def __setitem__(self, key, value):
        self._absent.discard(key)
        dict.__setitem__(self, key, value)

    def prime(self, found: dict, asked) -> None:
        """Rows read ahead in bulk: ``found`` as if loaded one by one, the rest of ``asked`` absent."""
        for key in asked:
            if dict.__contains__(self, key) or key in self._absent:
                continue
            if key in found:
                dict.__setitem__(self, key, found[key])
                self.loaded.add(key)
            else:
                self._absent.add(key)


def _any_in(db: sqlite3.Connection, table: str, ids: list[str]) -> bool:
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        if db.execute(f"SELECT 1 FROM {table} WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1",
                      chunk).fetchone():
            return True
    return False


def _extend(db: sqlite3.Connection, records: list[dict], stamps: dict, blobs: dict[str, str],
            admins: list[str]) -> bool:
    """Fold new records onto the saved state if they all sort after it; False if a full fold is needed."""
    acc0 = marshal.loads(_meta(db, "acc"))
    if acc0.get("cyclic"):
        return False
    if not records:  # only the file table changed (files touched, or re-hashed while racy)
        acc0["stamps"] = stamps
        db.executemany("INSERT OR REPLACE INTO main.meta VALUES (?, ?)",
                       [("acc", marshal.dumps(acc0)), ("stamps", marshal.dumps(stamps)),
                        ("gen", (_meta(db, "gen") or 0) + 1)])
        return True
    diagnostics = [{"path": r["path"], "id": None, **r["error"]} for r in records if "error" in r]
    events = [r["event"] for r in records if "event" in r]
    ids = [ev["id"] for ev in events]
    if len(set(ids)) != len(ids):
        return False
    frontier = acc0.get("frontier")
    if frontier is not None and any((ev["hlc"], ev["id"]) <= tuple(frontier) for ev in events):
        return False  # an event sorts before what is already folded
    if _any_in(db, "events", ids):
        return False  # a duplicate id: the reducer's dedupe decides
    if _any_in(db, "dangling", ids):
        return False  # an event already folded named one of these as its parent: the order changes
    sessions, saved_sessions = _load_sessions(db, events)
    if any(ev["kind"] == "session-open" and ev["session_id"] in sessions for ev in events):
        return False  # a second open of an id: which one owns it may depend on where each file is (_refold)
    opened = [x for ev in events if ev["kind"] == "session-open" and ev["session_id"] not in sessions
              for x in (ev["from"], ev["session_id"])]
    if _any_in(db, "peers", opened):
        return False  # events already folded mention a session only now opened
    paths = {r["event"]["id"]: r["path"] for r in records if "event" in r}
    ordered, cyclic = reducer.order_events(events)
    if cyclic:
        return False

    saved_work: dict[str, tuple] = {}  # wid -> (box, open, opener, data) as read

    def load_work(wid):
        row = db.execute("SELECT box, open, opener, data FROM work WHERE wid=?", (wid,)).fetchone()
        if row is None:
            return None
        saved_work[wid] = row
        return marshal.loads(row[3])

    def load_box(kind):
        def load(key):
            row = db.execute("SELECT data FROM boxes WHERE kind=? AND key=?", (kind, key)).fetchone()
            if row is None:
                return None
            box = marshal.loads(row[0])
            box["participants"] = set(box["participants"])
            return box
        return load

    agents = marshal.loads(_meta(db, "agents"))
    acc = {"sessions": sessions, "agent_by_peer": agents, "messages": _MessageSink(acc0["messages"], blobs),
           "threads": _Rows(load_box("thread")), "directs": _Rows(load_box("direct")), "work": _Rows(load_work),
           "leases": [], "diagnostics": diagnostics, "counters": acc0["counters"], "admins": admins}
    _prefetch(db, acc, events, saved_work)
    reducer.fold(acc, ordered, paths)
    _save_fold(db, acc0, acc, events, stamps, blobs=blobs, paths_of=paths, saved_sessions=saved_sessions,
               saved_work=saved_work)
    return True


def _refold(db: sqlite3.Connection, stamps: dict, admins: list[str]) -> None:
    """Fold every file again from the parse cache (the file table must be up to date).

    Memory stays flat in the number of events: events are ordered by their keys (``okey``: id, clock,
    parents), then read back from the parse cache in event order, a batch at a time, folded, and
    their message rows written as they come.  The result is what ``reducer.reduce`` gives.
    """
    diagnostics: list[dict] = []
    keys: dict[str, tuple] = {}  # id -> (hlc, after): what ordering needs
    where: dict[str, int] = {}  # id -> the parse-cache row it is read back from (its path is the file's)
    special: dict[str, tuple[dict, str, str]] = {}  # id -> (event, path, blob): the few held in memory
    opens: set = set()  # ids of session-open events
    groups: dict[str, list[tuple]] = {}  # an id found in more than one file -> each ("q"|"f"|"s", where)
    src_blob: dict[str, str] = {}  # two sources, one path, different bytes: such messages keep their own copy
    src_of: dict[str, str] = {}  # id -> the source ("remote:<ref>") of its first file, where not the work tree
    conflicted: set = set()
    rows = db.execute(
        "SELECT f.rowid, f.src, f.path, f.problem, f.blob, q.path, q.okey, q.rowid FROM files f "
        "LEFT JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob WHERE f.src='' UNION ALL "
        "SELECT f.rowid, f.src, f.path, f.problem, f.blob, q.path, q.okey, q.rowid FROM files f "
        "LEFT JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob "
        "WHERE f.src!='' AND f.path NOT IN (SELECT path FROM files WHERE src='')")
    loads = marshal.loads
    for rowid, src, path, problem, b, ppath, okey, prow in rows:
        if problem:
            diagnostics.append({"path": _py(path), "id": None, "reason_code": "malformed", "message": problem})
            continue
        if ppath is None:
            continue  # (not in the parse cache: nothing was read)
        if src:
            if src_blob.setdefault(path, b) != b:
                conflicted.add(_py(path))
        held = None
        if okey is None or ppath != path:  # not an event, or the same bytes seen under another path
            rec = _record(_py(path), None, _py(ppath),
                          db.execute("SELECT rec FROM p.parsed WHERE rowid=?", (prow,)).fetchone()[0])
            if "error" in rec:
                diagnostics.append({"path": rec["path"], "id": None, **rec["error"]})
                continue
            ev = rec["event"]
            eid, hlc, after, is_open = ev["id"], ev["hlc"], tuple(ev.get("after") or ()), ev["kind"] == "session-open"
            held = (ev, rec["path"], b)
        else:
            eid, hlc, after, is_open = loads(okey)
        if eid in keys:
            first = ("s", special[eid]) if eid in special else ("q", where[eid])
            groups.setdefault(eid, [(*first, src_of.get(eid, ""))]).append(("f", rowid, src))
            continue
        if src:
            src_of[eid] = src
        keys[eid] = (hlc, after or None)
        if held is None:
            where[eid] = prow
        else:
            special[eid] = held
        if is_open:
            opens.add(eid)
    del src_blob
    # ids used by several files: the reducer's own dedupe picks the one applied (and names the clash)
    for eid, members in groups.items():
        recs, blob_of = [], {}
        for how, ref, src in members:
            if how == "s":
                ev, path, b = ref
                recs.append({"path": path, "event": ev})
            else:
                (path, b, ppath, rec), = (_rows_by_id(db, [ref]) if how == "f" else _parsed_rows(db, [ref])).values()
                recs.append(_record(path, None, ppath, rec))
            if src:
                recs[-1] = dict(recs[-1], ref=src.split(":", 1)[-1])
            blob_of[path] = b
        kept, kept_paths = reducer.dedupe(recs, diagnostics)
        ev = kept[0]
        if any("ref" in r and r["path"] == kept_paths[eid] for r in recs):
            src_of[eid] = next(src for _how, _ref, src in members if src)
        else:
            src_of.pop(eid, None)
        special[eid] = (ev, kept_paths[eid], blob_of[kept_paths[eid]])
        keys[eid] = (ev["hlc"], tuple(ev.get("after") or ()) or None)
        (opens.add if ev["kind"] == "session-open" else opens.discard)(eid)
    del groups
    _trace(f"keys {len(keys)}")
    order, cyclic = reducer.order_keys(keys)
    _trace("order")
    if cyclic:
        for eid in cyclic:
            path = special[eid][1] if eid in special else _parsed_rows(db, [where[eid]])[where[eid]][0]
            diagnostics.append({"path": path, "id": eid, "reason_code": "malformed",
                                "message": "causal links (after) form a cycle; ordered by clock instead"})
    for name in _STATE_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {name}")
    for ddl in _STATE_TABLES.values():
        db.execute(ddl)
    _trace("drop")
    stream = _EventStream(db, order, where, special, conflicted)
    acc = reducer.new_fold(admins)
    acc["diagnostics"] = diagnostics
    acc["messages"] = sink = _StreamSink(db, stream.blobs)
    acc["threads"] = _Rows(lambda key: None)
    acc["directs"] = _Rows(lambda key: None)
    acc["work"] = _Rows(lambda key: None)
    open_order = reducer.local_first([eid for eid in order if eid in opens], src_of.__contains__)
    del src_of
    identities = list(_EventStream(db, open_order, where, special, conflicted))
    reducer.fold(acc, stream, stream.paths, identities=identities)
    del identities
    _trace("fold")
    # What ``_save_fold`` would take from a list of the events was gathered on the way: write the per-event
    # tables here and hand it the totals (as if extending an empty state by nothing); it writes the rest.
    sink.flush()
    ords = sink.ords
    db.executemany("INSERT INTO events VALUES (?,?)", ((eid, ords.get(eid)) for eid in keys))
    db.executemany("INSERT INTO peers VALUES (?)", [(n,) for n in stream.names])
    dangling = {p for _hlc, after in keys.values() if after for p in after if p not in keys}
    db.executemany("INSERT INTO dangling VALUES (?)", [(p,) for p in sorted(dangling)])
    top = max(((hlc, eid) for eid, (hlc, _a) in keys.items()), default=None)
    base = {"sessions": {}, "agent_by_peer": {}, "counters": {}, "diagnostics": [],
            "max_hlc": max((hlc for hlc, _a in keys.values() if hlc), default=None), "event_count": len(keys),
            "messages": 0, "leases": 0, "frontier": list(top) if top else None,
            "future": sorted(stream.future, key=lambda f: f["event"]["id"])}
    _save_fold(db, base, acc, [], stamps, blobs={}, cyclic=bool(cyclic), full=True, paths_of={})
    _trace("rows")
    for ddl in _STATE_INDEXES:
        db.execute(ddl)
    _trace("indexes")


def _rows_by_id(db: sqlite3.Connection, rowids: list[int]) -> dict[int, tuple]:
    """rowid -> (path, blob, parse-cache path, record bytes) of these files rows."""
    return {r: (_py(p), b, _py(pp), rec) for r, p, b, pp, rec in db.execute(
        "SELECT f.rowid, f.path, f.blob, q.path, q.rec FROM files f "
        "JOIN p.parsed q ON q.path = f.path AND q.blob = f.blob "
        f"WHERE f.rowid IN ({','.join('?' * len(rowids))})", rowids)}


def _parsed_rows(db: sqlite3.Connection, rowids: list[int]) -> dict[int, tuple]:
    """rowid -> (path, blob, path, record bytes) of these parse-cache rows (read where the path is the file's)."""
    out = {}
    for r, p, b, rec in db.execute(f"SELECT rowid, path, blob, rec FROM p.parsed WHERE rowid IN "
                                   f"({','.join('?' * len(rowids))})", rowids):
        p = _py(p)
        out[r] = (p, b, p, rec)
    return out


class _EventStream:
    """Events in the given order, read back from the parse cache a batch at a time (re-iterable).

    ``paths`` (id -> path) and ``blobs`` (path -> blob, "" for a path two sources disagree on) hold the
    current batch only: the fold asks them about the event it is folding.  As events pass, it notes what
    the saved state needs of all of them (peer names, parents, events dated ahead).
    """

    BATCH = 500

    def __init__(self, db, order: list[str], where: dict, special: dict, conflicted: set):
        self.db, self.order, self.where, self.special, self.conflicted = db, order, where, special, conflicted
        self.paths: dict[str, str] = {}
        self.blobs: dict[str, str] = {}
        self.names: set = set()
        self.future: list[dict] = []

    def __iter__(self):
        loads = marshal.loads
        horizon = int(time.time() * 1000) + reducer.FUTURE_TOLERANCE_MS - _FUTURE_SLACK_MS
        from handoff.core.model import format_ts
        horizon_ts, horizon_hlc, horizon_id = format_ts(horizon), f"{horizon:016d}", _ulid_prefix(horizon)
        names, future, paths, blobs = self.names, self.future, self.paths, self.blobs
        for i in range(0, len(self.order), self.BATCH):
            chunk = self.order[i:i + self.BATCH]
            want = [self.where[eid] for eid in chunk if eid not in self.special]
            got = _parsed_rows(self.db, want) if want else {}
            paths.clear()
            blobs.clear()
            for eid in chunk:
                if eid in self.special:
                    ev, path, blob = self.special[eid]
                else:
                    path, blob, _pp, rec = got[self.where[eid]]
                    ev = loads(rec)["event"]
                paths[eid] = path
                blobs[path] = "" if path in self.conflicted else blob
                names.add(ev["from"])
                for key in ("to", "session_id"):
                    if isinstance(ev.get(key), str):
                        names.add(ev[key])
                if ((str(ev.get("hlc"))[:16] > horizon_hlc or str(ev.get("ts")) > horizon_ts
                     or eid.split("_", 1)[-1][:10] > horizon_id) and _latest_ms(ev) > horizon):
                    future.append({"path": path, "event": {"id": eid, "hlc": ev.get("hlc"), "ts": ev.get("ts")}})
                yield ev


class _StreamSink:
    """The message sink of a full fold: rows go to the (fresh) messages table every few thousand."""

    FLUSH = 2000

    def __init__(self, db: sqlite3.Connection, blobs: dict[str, str]):
        self.db = db
        self.sink = _MessageSink(0, blobs)
        self.ords = self.sink.ords

    @property
    def rows(self) -> list[tuple]:
        return self.sink.rows

    def append(self, m: dict) -> None:
        sink = self.sink
        sink.append(m)
        if len(sink.rows) >= self.FLUSH:
            self.flush()

    def flush(self) -> None:
        sink = self.sink
        self.db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", sink.rows)
        sink.first_ord += len(sink.rows)
        sink.rows = []

    def __len__(self) -> int:
        return self.sink.first_ord + len(self.sink.rows)


class _MessageSink:
    """Where the fold appends messages: each becomes its table row at once (the message dict, a copy of
    its event, is not kept: at 100,000 events that is ~100 MB less)."""

    def __init__(self, first_ord: int, blobs: dict[str, str]):
        self.first_ord = first_ord
        self.blobs = blobs
        self.rows: list[tuple] = []
        self.ords: dict[str, int] = {}

    def append(self, m: dict) -> None:
        ext = m.get("ext")
        ikey = ext.get("idempotency_key") if isinstance(ext, dict) else None
        ordinal = self.first_ord + len(self.rows)
        self.ords[m["id"]] = ordinal
        blob = self.blobs.get(m["path"])  # messages point at the parse cache rather than copying the event
        self.rows.append((ordinal, m["id"], blob or None, m["path"], m["refused"], m["from"], m.get("to"),
                          m.get("channel"), m.get("surface"), m.get("thread_id"), m.get("direct_id"),
                          m.get("work_id"), ikey if isinstance(ikey, str) else None, m["hlc"],
                          None if blob else marshal.dumps(m)))

    def __len__(self) -> int:
        return len(self.rows)


def _load_sessions(db: sqlite3.Connection, events: list[dict]) -> tuple[dict[str, dict], dict[str, bytes]]:
    """The sessions a fold of ``events`` can look at, in fold order; and each one's row as it was read.

    ``reducer.fold`` finds an event's session by its ``session_id``, else by its sender's peer id (the
    last session of that peer wins), and opens a session only when its id is not taken: the sessions
    named by the events or belonging to their senders are all it can see, so only those are read.
    """
    sids = sorted({ev["session_id"] for ev in events if isinstance(ev.get("session_id"), str)})
    peers = sorted({ev["from"] for ev in events if isinstance(ev.get("from"), str)})
    rows: dict[int, tuple[str, bytes]] = {}
    for col, keys in (("sid", sids), ("peer", peers)):
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for seq, sid, data in db.execute(
                    f"SELECT seq, sid, data FROM sessions WHERE {col} IN ({','.join('?' * len(chunk))})", chunk):
                rows[seq] = (sid, data)
    saved = dict(rows[k] for k in sorted(rows))
    loads = marshal.loads
    return {sid: loads(data) for sid, data in saved.items()}, saved


def _prefetch(db: sqlite3.Connection, acc: dict, events: list[dict], saved_work: dict[str, tuple]) -> None:
    """Read the work units and rooms the events name in a few queries, not one per event (``saved_work``:
    each work unit's row as read)."""
    wids = sorted({ev["work_id"] for ev in events if isinstance(ev.get("work_id"), str)})
    threads, directs = set(), set()
    for ev in events:
        if ev.get("surface") == "thread":
            threads.add(f"{ev.get('channel')}/{ev.get('thread_id')}")
        elif isinstance(ev.get("direct_id"), str):
            directs.add(ev["direct_id"])
    loads = marshal.loads
    found = {}
    for i in range(0, len(wids), 500):
        chunk = wids[i:i + 500]
        for wid, *row in db.execute(f"SELECT wid, box, open, opener, data FROM work WHERE wid IN "
                                    f"({','.join('?' * len(chunk))})", chunk):
            saved_work[wid] = tuple(row)
            found[wid] = loads(row[3])
    acc["work"].prime(found, wids)
    for rows, sql, keys, pre, fix in (
            (acc["threads"], "SELECT key, data FROM boxes WHERE kind=? AND key IN ({})", sorted(threads), ("thread",),
             "participants"),
            (acc["directs"], "SELECT key, data FROM boxes WHERE kind=? AND key IN ({})", sorted(directs), ("direct",),
             "participants")):
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for key, data in db.execute(sql.format(",".join("?" * len(chunk))), (*pre, *chunk)):
                value = loads(data)
                if fix:
                    value[fix] = set(value[fix])
                found[key] = value
        rows.prime(found, keys)


def _open_counts(db: sqlite3.Connection, boxes: list[str]) -> dict[str, int]:
    """Open work units per box (``"thread:<channel>/<thread>"`` / ``"direct:<id>"``), in one query per 500."""
    out: dict[str, int] = {}
    for i in range(0, len(boxes), 500):
        chunk = boxes[i:i + 500]
        out.update(db.execute(f"SELECT box, COUNT(*) FROM work WHERE open=1 AND box IN ({','.join('?' * len(chunk))}) "
                              f"GROUP BY box", chunk))
    return out


def _save_sessions(db: sqlite3.Connection, acc: dict, saved: dict[str, bytes] | None) -> None:
    """Sessions and the agent of each peer, kept out of the small accumulator: a command reads the one
    session it acts for, not all of them.  After a full fold (``saved`` None) every row is written;
    after an extension only new sessions and those whose row changed."""
    dumps = marshal.dumps
    sessions = acc["sessions"]
    if saved is None:
        db.executemany("INSERT INTO sessions VALUES (?,?,?,?)",
                       [(i, sid, sess["peer_id"], dumps(sess)) for i, (sid, sess) in enumerate(sessions.items())])
        db.execute("INSERT OR REPLACE INTO main.meta VALUES ('agents', ?)", (dumps(acc["agent_by_peer"]),))
        return
    inserts, updates = [], []
    next_seq = None
    for sid, sess in sessions.items():
        data = dumps(sess)
        old = saved.get(sid)
        if old is None:
            if next_seq is None:
                next_seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM sessions").fetchone()[0]
            inserts.append((next_seq, sid, sess["peer_id"], data))
            next_seq += 1
        elif old != data:
            updates.append((data, sid))
    db.executemany("UPDATE sessions SET data=? WHERE sid=?", updates)
    db.executemany("INSERT INTO sessions VALUES (?,?,?,?)", inserts)
    if inserts:  # (a peer's agent is only ever added, by a session opening)
        db.execute("INSERT OR REPLACE INTO main.meta VALUES ('agents', ?)", (dumps(acc["agent_by_peer"]),))


_FUTURE_SLACK_MS = 30 * 86_400_000


def _ulid_prefix(ms: int) -> str:
    from handoff.core.ids import encode_base32
    return encode_base32(ms, 10)


def _latest_ms(ev: dict) -> int:
    """What clock_diagnostics compares with now: the latest of the event's clock, ts and id time."""
    from handoff.core.model import parse_hlc, parse_ts
    hlc = parse_hlc(ev.get("hlc"))
    try:
        from handoff.core.ids import ulid_ms
        id_ms = ulid_ms(ev["id"].split("_", 1)[1])
    except (ValueError, IndexError, KeyError):
        id_ms = 0
    return max(hlc[0] if hlc else 0, parse_ts(ev.get("ts")) or 0, id_ms)


def _save_fold(db, acc0, acc, events, stamps, *, blobs, cyclic=False, full=False, paths_of=None,
               saved_sessions=None, saved_work=None) -> None:
    """Write what a fold produced: new rows, touched rows, and the small accumulator."""
    first_ord = acc0.get("messages", 0)
    sink = acc["messages"]
    ords = sink.ords
    db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", sink.rows)
    first_lease = acc0.get("leases", 0)
    db.executemany("INSERT INTO leases VALUES (?,?)",
                   [(first_lease + i, marshal.dumps(ev)) for i, ev in enumerate(acc["leases"])])
    db.executemany("INSERT OR IGNORE INTO events VALUES (?,?)", [(ev["id"], ords.get(ev["id"])) for ev in events])
    known = {ev["id"] for ev in events}
    names = set()
    parents = set()
    for ev in events:
        names.add(ev["from"])
        for key in ("to", "session_id"):
            if isinstance(ev.get(key), str):
                names.add(ev[key])
        for p in ev.get("after") or ():
            if p not in known:
                parents.add(p)
    db.executemany("INSERT OR IGNORE INTO peers VALUES (?)", [(n,) for n in names])
    if parents:
        plist = sorted(parents)
        present = set()
        for i in range(0, len(plist), 500):
            chunk = plist[i:i + 500]
            present.update(r[0] for r in db.execute(
                f"SELECT id FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        db.executemany("INSERT OR IGNORE INTO dangling VALUES (?)", [(p,) for p in plist if p not in present])
    # work units and boxes: new ones get the next sequence numbers, in the order the fold created them
    work = acc["work"]
    next_seq = 0 if full else db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM work").fetchone()[0]
    boxes_touched: set[tuple[str, str]] = set()
    inserts, updates, data_updates = [], [], []
    for wid, w in work.items():
        kind, key = reducer.work_box(w)
        boxes_touched.add((kind, key))
        open_ = int(w["state"] not in reducer.TERMINAL_STATES)
        if wid in work.loaded:
            data = marshal.dumps(w)
            old = saved_work.get(wid) if saved_work else None
            if old is None or tuple(old[:3]) != (f"{kind}:{key}", open_, w.get("opener_id")):
                updates.append((f"{kind}:{key}", open_, w.get("opener_id"), data, wid))
            elif old[3] != data:  # (the indexed columns are unchanged: leave their indexes alone)
                data_updates.append((data, wid))
        else:
            inserts.append((wid, next_seq, f"{kind}:{key}", open_, w.get("opener_id"), marshal.dumps(w)))
            next_seq += 1
    db.executemany("UPDATE work SET box=?, open=?, opener=?, data=? WHERE wid=?", updates)
    db.executemany("UPDATE work SET data=? WHERE wid=?", data_updates)
    db.executemany("INSERT INTO work VALUES (?,?,?,?,?,?)", inserts)
    _save_timers(db, work, full)
    if full:  # every work unit is in memory: count the open ones per box here
        counts: dict[str, int] = {}
        for w in work.values():
            if w["state"] not in reducer.TERMINAL_STATES:
                k = "%s:%s" % reducer.work_box(w)
                counts[k] = counts.get(k, 0) + 1

        def open_count(kind, key):
            return counts.get(f"{kind}:{key}", 0)
    else:
        counts = None  # (counted once the box rows are known, below: one query, not one per box)

        def open_count(kind, key):
            return counts.get(f"{kind}:{key}", 0)
    next_box = 0 if full else db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM boxes").fetchone()[0]
    brows = []
    for kind, table in (("thread", acc["threads"]), ("direct", acc["directs"])):
        for key, box in table.items():
            brows.append((kind, key, box, key in table.loaded))
    for kind, key in sorted(boxes_touched):
        table = acc["threads"] if kind == "thread" else acc["directs"]
        if key not in table:
            box = table.get(key)  # a box whose open-work count may have changed
            if box is not None:
                brows.append((kind, key, box, True))
    if not full:
        counts = _open_counts(db, sorted({f"{kind}:{key}" for kind, key, _box, _existed in brows}))
    box_inserts, box_updates = [], []
    for kind, key, box, existed in brows:
        box["open_work_count"] = open_count(kind, key)
        if isinstance(box["participants"], set):
            reducer.finish_box(box)
        if existed:
            box_updates.append((marshal.dumps(box), kind, key))
        else:
            box_inserts.append((kind, key, next_box, marshal.dumps(box)))
            next_box += 1
    db.executemany("UPDATE boxes SET data=? WHERE kind=? AND key=?", box_updates)
    db.executemany("INSERT INTO boxes VALUES (?,?,?,?)", box_inserts)
    frontier = acc0.get("frontier")
    if events:
        top = max((ev["hlc"], ev["id"]) for ev in events)
        if frontier is None or top > tuple(frontier):
            frontier = top
    max_hlc = max([h for h in [acc0.get("max_hlc")] + [ev["hlc"] for ev in events] if h], default=None)
    diagnostics = list(acc0.get("diagnostics", [])) + acc["diagnostics"]
    diagnostics.sort(key=reducer.diagnostic_key)
    # Events that may be dated ahead of a reader's clock (reducer.clock_diagnostics, applied at read time):
    # kept when within a month of being "future" now, so a clock a little behind still sees them.
    horizon = int(time.time() * 1000) + reducer.FUTURE_TOLERANCE_MS - _FUTURE_SLACK_MS
    future = [r for r in acc0.get("future", []) if _latest_ms(r["event"]) > horizon]
    from handoff.core.model import format_ts
    horizon_ts = format_ts(horizon)
    horizon_hlc = f"{horizon:016d}"
    horizon_id = _ulid_prefix(horizon)
    future += [{"path": paths_of.get(ev["id"], ""), "event": {"id": ev["id"], "hlc": ev.get("hlc"), "ts": ev.get("ts")}}
               for ev in events
               if (str(ev.get("hlc"))[:16] > horizon_hlc or str(ev.get("ts")) > horizon_ts
                   or ev["id"].split("_", 1)[-1][:10] > horizon_id) and _latest_ms(ev) > horizon]
    _save_sessions(db, acc, saved_sessions)
    small = {"counters": acc["counters"],
             "diagnostics": diagnostics, "max_hlc": max_hlc, "event_count": acc0.get("event_count", 0) + len(events),
             "messages": first_ord + len(acc["messages"]), "leases": first_lease + len(acc["leases"]),
             "frontier": list(frontier) if frontier else None, "cyclic": cyclic or acc0.get("cyclic", False),
             "future": future,
             "stamps": stamps}
    db.executemany("INSERT OR REPLACE INTO main.meta VALUES (?, ?)",
                   [("acc", marshal.dumps(small)), ("stamps", marshal.dumps(stamps)),
                    ("gen", (_meta(db, "gen") or 0) + 1)])


def _save_timers(db, work, full: bool) -> None:
    """Keep ``timers`` in step with the work units this fold wrote (a full fold starts from an empty table)."""
    from handoff.core import timers
    rows, gone = [], []
    for wid, w in work.items():
        trow = timers.row(w)
        if trow is not None:
            rows.append((wid, *trow))
        elif not full:
            gone.append((wid,))
    db.executemany("DELETE FROM timers WHERE wid=?", gone)
    db.executemany("INSERT OR REPLACE INTO timers VALUES (?,?,?,?)", rows)


# --------------------------------------------------------------------------- the state, read lazily


class State(dict):
    """The reduced state, as ``reducer.reduce`` returns it, loaded from the index on first access.

    Counters and diagnostics are small and loaded at once; sessions, messages, work units, threads,
    direct rooms and leases are read from their tables when asked for (one row by key, or all).
    It is a dict so that ``json.dumps(state)`` and ``isinstance(state, dict)`` keep working: ``items()``
    and ``values()`` hand out plain lists and dicts (everything loaded), ``state[key]`` the lazy parts.
    """

    _KEYS = ("reducer_version", "sessions", "messages", "threads", "directs", "work", "leases", "diagnostics",
             "counters", "max_hlc", "event_count")

    def __init__(self, db: sqlite3.Connection, acc: dict):
        # (the underlying dict only holds the keys: C code that asks a dict subclass for its size -- json's
        # fast path for {} -- must not see it empty; every Python-level access goes through the methods)
        super().__init__(dict.fromkeys(self._KEYS))
        self._db = db
        self._acc = acc
        self._cache: dict = {}
        self._now_ms: int | None = None

    def __getitem__(self, key):
        if key in self._cache:
            return self._cache[key]
        acc = self._acc
        if key == "reducer_version":
            value = reducer.REDUCER_VERSION
        elif key == "diagnostics":
            value = acc["diagnostics"]
            future = reducer.clock_diagnostics(acc.get("future", []), self._now_ms) if self._now_ms else []
            if future:
                value = sorted(value + future, key=reducer.diagnostic_key)
        elif key in ("counters", "max_hlc", "event_count"):
            value = acc[key]
        elif key == "sessions":
            value = Sessions(self._db)
        elif key == "messages":
            value = Messages(self._db, acc["messages"])
        elif key == "threads":
            value = Boxes(self._db, "thread")
        elif key == "directs":
            value = Boxes(self._db, "direct")
        elif key == "work":
            value = WorkUnits(self._db)
        elif key == "leases":
            value = [marshal.loads(r[0]) for r in self._db.execute("SELECT data FROM leases ORDER BY ord")]
        else:
            raise KeyError(key)
        if isinstance(value, (Messages, _Table)):
            value._owner = getattr(self, "_owner", None)  # its connection outlives the state it came from
        self._cache[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __contains__(self, key) -> bool:
        return key in self._KEYS

    def get(self, key, default=None):
        return self[key] if key in self._KEYS else default

    def keys(self):
        return list(self._KEYS)

    def items(self):
        return self.materialize().items()

    def values(self):
        return self.materialize().values()

    def __eq__(self, other) -> bool:
        return self.materialize() == (other.materialize() if isinstance(other, State) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"<handoff index state: {self._acc.get('event_count', 0)} events>"

    def __reduce__(self):
        return (dict, (self.materialize(),))

    def materialize(self) -> dict:
        """A plain dict equal to ``reducer.reduce`` of the same files (tests, debugging)."""
        out = {}
        for k in self._KEYS:
            v = State.__getitem__(self, k)
            if isinstance(v, Messages):
                v = list(v)
            elif isinstance(v, _Table):
                v = dict(v.items())
            out[k] = v
        return out

    def narrowed(self, **parts) -> dict:
        """A plain state dict whose given parts (e.g. ``messages=[...]``) replace the full ones.

        For views that only look at some messages: pass exactly the messages they would keep.
        """
        out = {k: self[k] for k in self._KEYS if k not in parts}
        out.update(parts)
        return out


_MSG_SQL = ("SELECT m.path, m.refused, q.rec, m.data FROM messages m "
            "LEFT JOIN p.parsed q ON q.path = m.path AND q.blob = m.blob "
            "WHERE {where} ORDER BY m.ord")


def _messages(db, where: str, args) -> list[dict]:
    loads = marshal.loads
    return [dict(loads(rec)["event"], path=path, refused=refused) if data is None else loads(data)
            for path, refused, rec, data in db.execute(_MSG_SQL.format(where=where), args)]


class Messages(Sequence):
    """Messages in event order; indexing and slicing read only the rows asked for."""

    def __init__(self, db: sqlite3.Connection, count: int):
        self._db, self._count = db, count
        self._all: list | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        if self._all is not None:
            return self._all[i]
        if isinstance(i, slice):
            start, stop, step = i.indices(self._count)
            if step != 1:
                return list(self)[i]
            return _messages(self._db, "m.ord>=? AND m.ord<?", (start, stop))
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(i)
        return _messages(self._db, "m.ord=?", (i,))[0]

    def __iter__(self):
        if self._all is None:
            self._all = _messages(self._db, "1", ())
        return iter(self._all)

    def where(self, sql: str, args: tuple) -> list[dict]:
        """Messages matching a condition on the indexed columns (``m.frm``, ``m.channel``...), in order."""
        return _messages(self._db, sql, args)

    def select(self, sql: str, args: tuple) -> list[tuple]:
        """Rows of a query on the messages table's columns (``ord``, ``id``, ``frm``...): no record is read."""
        return self._db.execute(sql, args).fetchall()

    def at(self, ords: list[int]) -> list[dict]:
        """The messages at these positions (ascending), in order."""
        out: list[dict] = []
        for i in range(0, len(ords), 500):
            chunk = ords[i:i + 500]
            out += _messages(self._db, f"m.ord IN ({','.join('?' * len(chunk))})", chunk)
        return out

    # The questions ops.py asks while checking a write, answered by the indexes instead of a full scan.
    def has_id(self, mid: str) -> bool:
        row = self._db.execute("SELECT ord FROM events WHERE id=?", (mid,)).fetchone()
        return row is not None and row[0] is not None

    def uses_work(self, wid: str) -> bool:
        return self._db.execute("SELECT 1 FROM messages WHERE work=? LIMIT 1", (wid,)).fetchone() is not None

    def with_key(self, key: str) -> list[dict]:
        """Messages whose id or idempotency key is ``key`` (a superset of what a replay check keeps)."""
        return self.where("m.ord IN (SELECT ord FROM events WHERE id=?) OR m.ikey=?", (key, key))


class _Table(Mapping):
    _sql_one = _sql_all = _sql_count = ""

    def __init__(self, db, *args):
        self._db, self._args = db, args
        self._one: dict = {}
        self._all: dict | None = None

    def __getitem__(self, key):
        if self._all is not None:
            return self._all[key]
        if key not in self._one:
            row = self._db.execute(self._sql_one, (*self._args, key)).fetchone()
            if row is None:
                raise KeyError(key)
            self._one[key] = marshal.loads(row[0])
        return self._one[key]

    def _load_all(self) -> dict:
        if self._all is None:
            self._all = {k: marshal.loads(d) for k, d in self._db.execute(self._sql_all, self._args)}
        return self._all

    def __iter__(self):
        return iter(self._load_all())

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        return self._db.execute(self._sql_count, self._args).fetchone()[0]

    def __contains__(self, key) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def values(self):
        return self._load_all().values()

    def items(self):
        return self._load_all().items()

    def keys(self):
        return self._load_all().keys()


class Sessions(_Table):
    _sql_one = "SELECT data FROM sessions WHERE sid=?"
    _sql_all = "SELECT sid, data FROM sessions ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM sessions"

    def by_peer(self, peer_id: str) -> dict | None:
        """The first session (in fold order) of this peer id: ``queries.find_session`` without a full scan."""
        if self._all is not None:
            return next((s for s in self._all.values() if s["peer_id"] == peer_id), None)
        row = self._db.execute("SELECT sid FROM sessions WHERE peer=? ORDER BY seq LIMIT 1", (peer_id,)).fetchone()
        return None if row is None else self[row[0]]


class Boxes(_Table):
    _sql_one = "SELECT data FROM boxes WHERE kind=? AND key=?"
    _sql_all = "SELECT key, data FROM boxes WHERE kind=? ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM boxes WHERE kind=?"


class WorkUnits(_Table):
    _sql_one = "SELECT data FROM work WHERE wid=?"
    _sql_all = "SELECT wid, data FROM work ORDER BY seq"
    _sql_count = "SELECT COUNT(*) FROM work"

    def preload(self, wids) -> None:
        """Read these work units now, in one query per 500, for the lookups that follow."""
        if self._all is not None:
            return
        todo = sorted(w for w in wids if w not in self._one)
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            for wid, data in self._db.execute(
                    f"SELECT wid, data FROM work WHERE wid IN ({','.join('?' * len(chunk))})", chunk):
                self._one[wid] = marshal.loads(data)

    def by_opener(self, opener_id: str) -> list[dict]:
        return [marshal.loads(r[0]) for r in self._db.execute(
            "SELECT data FROM work WHERE opener=? ORDER BY seq", (opener_id,))]

    def open_units(self) -> list[dict]:
        """The units not in a terminal state, in state order (column ``open``, no other unit unmarshalled)."""
        if self._all is not None:
            return [w for w in self._all.values() if w["state"] not in reducer.TERMINAL_STATES]
        return [marshal.loads(r[0]) for r in self._db.execute("SELECT data FROM work WHERE open=1 ORDER BY seq")]
