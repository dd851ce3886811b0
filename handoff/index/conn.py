"""One worktree's connection to the cache: its state file with the shared parse cache attached as ``p``.

Opening sets either file up on first use, starts it again when it belongs to another version of the
code (or, for the state, another parse cache or another boot), repairs damage, and falls back to a
database in memory when the files cannot be used (full disk, read-only, locked up): then the answer
is correct, only not cached.
"""
from __future__ import annotations

import os
import sqlite3
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from handoff.index.db import (
    INDEX_FORMAT,
    PARSED_SCHEMA,
    VIEW_SCHEMA,
    boot_id,
    code_version,
    create_state_tables,
    forget_old_views,
    get_meta,
    note_rebuilt,
    remove_db,
    trouble,
    use_wal,
)

if TYPE_CHECKING:
    from handoff.store.place import Place

BUSY_MS = 60_000  # how long a command waits for another's write to the cache (in WAL mode readers never wait)
FIRST_BUILD_BUSY_MS = 3_600_000  # the same while a new file's first build runs (see ``db.use_wal``)


class Cache:
    """The connection half of ``refresh.Index``: opening, repairing, journal modes and syncing."""

    def __init__(self, ws: Place):
        self.ws = weakref.proxy(ws)  # (no cycle: the connection closes as soon as the Workspace goes)
        self.root = ws.root
        self.dir = ws.paths.shared / "cache"
        import zlib
        path = str(ws.paths.worktree).encode()
        key = f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}"
        self.view_path = self.dir / f"view-{INDEX_FORMAT}-{key}.sqlite3"
        self.parsed_path = self.dir / f"parsed-{INDEX_FORMAT}.sqlite3"
        self.lock_path: Path | None = self.dir / f"view-{key}.lock"
        self.db: sqlite3.Connection | None = None
        self.wal_pending: list[str] = []  # files still in rollback-journal mode (see ``use_wal``)
        self.boot: str | None = None

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except Exception:
                pass
            self.db = None

    def connect(self) -> sqlite3.Connection:
        """The open connection (opened, set up or repaired first if need be)."""
        if self.db is None:
            try:
                self.db = self._connect_files()
            except (sqlite3.Error, OSError) as exc:
                self.close()
                kind = trouble(exc) if isinstance(exc, sqlite3.Error) else "unusable"
                if kind == "damaged":
                    self.repair(exc)  # corrupt, truncated, not a database: it is only a cache
                if kind in ("damaged", "gone"):
                    try:
                        self._connect_files()
                    except (sqlite3.Error, OSError):
                        self.close()
                if self.db is None:
                    self.db = self.connect_memory()  # unwritable, full or locked: correct, only not cached
            weakref.finalize(self, self.db.close)  # closed when the Workspace (and this index) goes
        return self.db

    def _connect_files(self) -> sqlite3.Connection:
        """One connection to this worktree's state file with the shared parse cache attached as ``p``.

        Either file is started again when it was written by another version of the code, or (for the
        state) against another parse cache, or (for the state, see ``boot_id``) since the last boot.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        version = code_version()
        boot = boot_id()
        want_view = {"code": version} if boot is None else {"code": version, "boot": boot}
        want_view["admins"] = ",".join(self.admins())  # (the fold's session-close rule reads them)
        from handoff.core.approvals import policy_key
        want_view["approvals"] = policy_key(self.approvals())  # (and its approval rule, these)
        for _attempt in range(3):
            # (the long wait until the files are known to be in WAL mode: see ``use_wal``)
            db = sqlite3.connect(str(self.view_path), timeout=FIRST_BUILD_BUSY_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("ATTACH DATABASE ? AS p", (str(self.parsed_path),))
                token = self._check(db, "p.", PARSED_SCHEMA, {"code": version}, "token")
                if token is None:
                    db.close()
                    remove_db(self.parsed_path)
                    continue
                fresh = self._check(db, "main.", VIEW_SCHEMA, dict(want_view, parsed=token), None)
                if fresh is None:
                    db.close()
                    remove_db(self.view_path)
                    continue
                if fresh == "created":
                    create_state_tables(db)
                self.boot = boot
                self.wal_pending = [s for s in ("main", "p")
                                    if db.execute(f"PRAGMA {s}.journal_mode").fetchone()[0] != "wal"]
                self.retry_wal(db)
                self._settings(db)
                self.db = db
                forget_old_views(self.dir, self.view_path)
                return db
            except BaseException:
                db.close()
                raise
        raise sqlite3.DatabaseError("cannot set up the index files")

    @staticmethod
    def _check(db: sqlite3.Connection, schema_name: str, ddl: str, want: dict, token_key: str | None) -> str | None:
        """Set up one file on first use; None when it belongs to another version (start it again).

        Returns the file's token (``token_key``), "created", or "ok".
        """
        def read_meta() -> dict:
            try:
                return dict(db.execute(f"SELECT k, v FROM {schema_name}meta").fetchall())
            except sqlite3.OperationalError:
                return {}

        meta = read_meta()
        if not meta:  # (a new file starts in rollback-journal mode: see ``use_wal``)
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

    def admins(self) -> list[str]:
        """``identity.admins`` of the config: agents whose session-close the fold applies to any session."""
        from handoff.core.checks import admins_of
        return admins_of(self.ws.config)

    def approvals(self) -> dict:
        """``approvals`` of the config (``core.approvals.policy_of``): who may decide a person's gate."""
        from handoff.core.approvals import policy_of
        return policy_of(self.ws.config)

    def connect_memory(self) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(VIEW_SCHEMA)
        db.execute("ATTACH DATABASE ':memory:' AS p")
        db.executescript(PARSED_SCHEMA.replace("EXISTS ", "EXISTS p."))
        create_state_tables(db)
        self.lock_path = None
        self.wal_pending = []
        return db

    def repair(self, exc: BaseException) -> None:
        """Drop both files (damaged: they are only a cache) and say so."""
        remove_db(self.view_path)
        remove_db(self.parsed_path)
        note_rebuilt(self.dir, exc)

    def retry_wal(self, db: sqlite3.Connection, wait_ms: int = 0) -> None:
        """Switch files still in rollback-journal mode to WAL, once their first build is committed (until
        then the switch would make that build write every page twice); each new read tries again, so a
        long-lived process (a watcher) does not hold others to the rollback journal's locking."""
        if self.wal_pending and get_meta(db, "gen") is not None:
            try:
                self.wal_pending = use_wal(db, self.wal_pending, wait_ms)
            finally:
                self._settings(db)  # (syncing and waiting for the modes the files are in now)

    def _settings(self, db: sqlite3.Connection) -> None:
        """Syncing and waiting as each file's journal mode wants them.

        The parse cache is synced: ``NORMAL`` in WAL mode, where a power cut can lose the last commits but
        never damage the file; ``FULL`` in rollback-journal mode, where ``NORMAL`` could.  The state file
        is not synced where the boot can be told (see ``boot_id``).  Until both files are in WAL mode, a
        reader may wait for a whole first build (see ``use_wal``).
        """
        pending = self.wal_pending
        db.execute("PRAGMA synchronous=" + ("OFF" if self.boot is not None else "FULL" if "main" in pending
                                             else "NORMAL"))
        db.execute("PRAGMA p.synchronous=" + ("FULL" if "p" in pending else "NORMAL"))
        db.execute(f"PRAGMA busy_timeout={FIRST_BUILD_BUSY_MS if pending else BUSY_MS}")
