"""The cache's files: schemas, the code version that keys them, WAL and locks, and telling damage apart.

The parse cache (``parsed-*.sqlite3``) is shared by every worktree; the state (``view-*.sqlite3``) is
one per worktree.  Either is started again when written by another version of the code.
"""
from __future__ import annotations

import marshal
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from handoff.store import files as store

if TYPE_CHECKING:
    from handoff.errors import HandoffError

INDEX_FORMAT = 2

MAX_VIEWS = 16  # state files kept for worktrees not used lately

# The modules whose code the cache's contents depend on, besides every module of this package (``code_version``).
# (paths under handoff/; every module of the index package counts too)
CODE_MODULES = ("core/yaml/canon.py", "core/yaml/codec.py", "core/yaml/strict.py", "core/model.py", "core/schema.py",
                "core/ids.py", "core/lifecycle.py", "core/reducer.py", "core/timers.py", "core/yaml/bounds.py",
                "core/archive.py", "core/approvals.py")


# SQLite's primary result codes that say nothing is wrong inside the files (``trouble``)
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another command holds them
_UNUSABLE_CODES = {3, 7, 8, 13, 14, 15, 23}  # PERM, NOMEM, READONLY, FULL, CANTOPEN, PROTOCOL, AUTH
_IOERR = 10  # SQLITE_IOERR: the files were deleted or replaced under the connection, or the disk failed


_HERE = os.path.dirname(__file__)  # (the index package: where its own reads of the cache's bytes fail)


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
        if tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _HERE:
            return "damaged"  # raised in the index, not in code it calls: bytes marshal cannot read
    return None


def note_rebuilt(cache_dir: Path, exc: BaseException) -> None:
    """Say on stderr (once per repair: the files it names are gone after it) that the cache was rebuilt."""
    why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    sys.stderr.write(f"handoff: the cache in {cache_dir} could not be read ({why}); "
                     "rebuilt it from the event files\n")


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


PARSED_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
CREATE TABLE IF NOT EXISTS parsed(path TEXT NOT NULL, blob TEXT NOT NULL, rec BLOB NOT NULL, okey BLOB,
    PRIMARY KEY(path, blob));
"""
VIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
CREATE TABLE IF NOT EXISTS dirs(path TEXT PRIMARY KEY, mtime INTEGER);
CREATE TABLE IF NOT EXISTS files(src TEXT, path TEXT, dir TEXT, blob TEXT, problem TEXT,
    size INTEGER, mtime INTEGER, ino INTEGER, ctime INTEGER, PRIMARY KEY(path, src));
CREATE INDEX IF NOT EXISTS files_dir ON files(src, dir);
"""
# The folded state: dropped and rebuilt in bulk by a full fold (secondary indexes built after the rows).
STATE_TABLES = {
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
    # what each message answers (reply_to, causation_id, a receipt's for_id): ``narrow.for_inbox`` reads
    # only the session's own messages that answer one of the messages it keeps
    "answers": "CREATE TABLE answers(id TEXT, ord INTEGER)",
    # per session: the clock below which every candidate message is acknowledged (``ackfloor``)
    "ackfloor": "CREATE TABLE ackfloor(sid TEXT PRIMARY KEY, k BLOB, ino INTEGER, upto INTEGER, floor TEXT, "
                "n0 INTEGER, tail BLOB)",
    # events that may be dated ahead of a reader's clock (``save.future_horizon``), by their latest time
    "future": "CREATE TABLE future(id TEXT PRIMARY KEY, latest INTEGER, path TEXT, hlc TEXT, ts TEXT) WITHOUT ROWID",
}
STATE_INDEXES = (
    "CREATE INDEX messages_from ON messages(frm)",
    # (id, frm: for_inbox leaves acked and own messages out from the index)
    "CREATE INDEX messages_to ON messages(to_, hlc, id, frm)",
    "CREATE INDEX messages_box ON messages(channel, thread, direct)",
    "CREATE INDEX messages_work ON messages(work)",
    "CREATE INDEX messages_ikey ON messages(ikey) WHERE ikey IS NOT NULL",
    # (for_inbox's broadcasts: without it the planner walks every to_-less message)
    # (to_ and surface too, though constant here: only then does SQLite answer from the index alone)
    "CREATE INDEX messages_bcast ON messages(channel, hlc, id, frm, to_, surface) WHERE to_ IS NULL AND surface='thread'",
    "CREATE INDEX work_box ON work(box, open)",
    "CREATE INDEX work_opener ON work(opener)",
    "CREATE INDEX sessions_peer ON sessions(peer)",
    "CREATE INDEX future_latest ON future(latest)",
    "CREATE INDEX answers_id ON answers(id, ord)",
)

_code_version_cache: list[str] = []


def code_version() -> str:
    """Changes whenever the code that parses or reduces events changes: then every cache is rebuilt."""
    if not _code_version_cache:
        import zlib  # (a checksum of the sources is enough here, and cheaper to load than hashlib)
        crc = zlib.crc32(f"{INDEX_FORMAT}:{marshal.version}:{sys.version_info[:2]}".encode())
        here = Path(__file__).resolve().parent
        names = [f"../{name}" for name in CODE_MODULES] + sorted(p.name for p in here.glob("*.py"))
        for name in names:
            try:
                data = (here / name).read_bytes()
            except OSError:
                data = name.encode()
            crc = zlib.crc32(data, zlib.adler32(data, crc))
        _code_version_cache.append(f"{crc:08x}{len(names):02d}")
    return _code_version_cache[0]


def boot_id() -> str | None:
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


def remove_db(path: Path) -> None:
    for suffix in _DB_SUFFIXES:
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass


def remove_all(cache_dir: Path) -> None:
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


@overload
def sql_path(path: None) -> None: ...
@overload
def sql_path(path: str) -> str | bytes: ...
def sql_path(path: str | None) -> str | bytes | None:
    """A path as SQLite can store it: names that are not UTF-8 (surrogate-escaped) go in as bytes."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")


@overload
def py_path(value: None) -> None: ...
@overload
def py_path(value: str | bytes) -> str: ...
def py_path(value: str | bytes | None) -> str | None:
    """A path as read back from SQLite (see ``sql_path``)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def get_meta(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT v FROM main.meta WHERE k=?", (key,)).fetchone()
    return row[0] if row else None


def create_state_tables(db: sqlite3.Connection, drop: bool = False) -> None:
    for name, ddl in STATE_TABLES.items():
        if drop:
            db.execute(f"DROP TABLE IF EXISTS {name}")
        db.execute(ddl.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS "))
    for ddl in STATE_INDEXES:
        db.execute(ddl.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "))


def use_wal(db: sqlite3.Connection, schemas: list[str], wait_ms: int = 0) -> list[str]:
    """Switch these attached files to WAL now if nobody else is using them; return those left as they were.

    A new cache file is first filled in SQLite's rollback-journal mode: a cold build writes each page
    once, where WAL writes it twice (to the log, then back into the file at the checkpoint that ends
    the build: ~1.2 s of a 20 s build at 100,000 events).  Its rollback journal holds only the empty
    file's few pages, so a build cut short is still undone whole.  Once the build is committed the
    file turns to WAL, so readers never wait for a writer.  The switch needs the file to itself: it is
    tried waiting at most ``wait_ms``, and again by each later read if someone was reading.  Until
    then a reader may have to wait for the whole first build (the builder holds the file once its
    pages spill from SQLite's cache), so it waits up to ``conn.FIRST_BUILD_BUSY_MS``, not ``conn.BUSY_MS``: a
    build of 400,000 events takes about a minute here.  A new connection cannot tell the mode before
    it reads, so it starts with the long wait and shortens it once it knows.  (A builder that dies
    frees the file at once; one that hangs would hold others on the view's file lock anyway.)
    """
    left = []
    db.execute(f"PRAGMA busy_timeout={int(wait_ms)}")  # (the caller sets it back: ``Cache._settings``)
    for schema in schemas:
        try:
            mode = db.execute(f"PRAGMA {schema}.journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError:
            mode = None
        if mode != "wal":
            left.append(schema)
    return left


def forget_old_views(cache_dir: Path, keep: Path) -> None:
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
            remove_db(path)


class gc_paused:
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


class maybe_lock:
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


class write_txn:
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
