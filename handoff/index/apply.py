"""Applying a plan (``scan.Plan``): parse what is new, bring the file table up to date, then fold.

New files are parsed (on every core when there are many) and folded onto the saved state when they all
sort after everything already folded -- the usual case for new writes and pulls.  Anything else (a
removed file, a branch switch, an event that sorts earlier) folds everything again from the parse
cache without parsing again: folding is cheap, parsing is not.
"""
from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from handoff.index import stats
from handoff.index.db import sql_path
from handoff.index.fold import extend
from handoff.index.parse import read_and_parse
from handoff.index.records import lookup, parse_items, records_of, store_parsed
from handoff.index.scan import Plan, dirname, stat_key
from handoff.index.stats import STATS


def apply(db: sqlite3.Connection, plan: Plan, root: Path, admins: Callable[[], list[str]],
          policy: Callable[[], dict | None] = lambda: None) -> None:
    """Bring the file table and the state up to date with ``plan`` (inside the caller's write transaction)."""
    stats.trace("scan")
    scan = plan.scan
    file_rows, new_pairs, fresh, refold_all = _work_tree_rows(db, plan, root)
    removed: list[tuple[str, str]] = [("", rel) for rel in scan.gone]
    if _source_rows(db, plan, file_rows, new_pairs, fresh, removed):
        refold_all = True
    _write_file_table(db, plan, file_rows, removed)
    del file_rows
    stats.trace("file table")
    # the state: fold the new records on, or fold everything again
    if not refold_all:
        records = records_of(db, new_pairs, fresh)
        if extend(db, records, plan.new_stamps, dict(new_pairs), admins(), policy()):
            STATS["extend"] += 1
            stats.trace(f"extend {len(records)}")
            return
    from handoff.index.refold import refold  # (only here: a write or a pull usually extends)

    STATS["refold"] += 1
    del fresh, new_pairs  # (everything is in the parse cache: the fold reads it back)
    scan.present = []
    refold(db, plan.new_stamps, admins(), policy())
    stats.trace("refold")


def _work_tree_rows(db: sqlite3.Connection, plan: Plan,
                    root: Path) -> tuple[list[tuple], list[tuple[str, str]], dict[str, dict], bool]:
    """Read and parse the work tree's new and changed files: (file-table rows, the (path, blob) of files
    the state does not hold yet, blob -> record parsed just now, whether everything must be folded again)."""
    scan = plan.scan
    refold_all = plan.cold or bool(scan.gone) or bool(scan.gone_dirs)
    file_rows: list[tuple] = []
    new_pairs: list[tuple[str, str]] = []
    fresh: dict[str, dict] = {}
    need = [(rel, st) for rel, st, problem in scan.present if not problem]
    for rel, _st, problem in scan.present:
        if problem:
            file_rows.append(("", rel, dirname(rel), None, problem, 0, 0, 0, 0))
            refold_all = True
    rechecks = sum(1 for rel, _st in need if rel in scan.prev)
    on_files = None
    if plan.cold:  # the file table is written as the files come back from the parse workers
        db.execute("DELETE FROM files")
        db.execute("DELETE FROM dirs")

        def on_files(chunk: list[tuple]) -> None:
            _insert_files(db, [("", rel, dirname(rel), None, problem, 0, 0, 0, 0) if problem else
                               ("", rel, dirname(rel), blob, None) + stat_key(st, scan.now)
                               for rel, st, blob, problem in chunk])
    parsed_files = read_and_parse(db, root, need, rechecks, on_files)
    stats.trace(f"read+parse {len(need)}")
    for rel, st, blob, rec, problem in parsed_files:  # (none when on_files took them: a cold build)
        if problem:
            file_rows.append(("", rel, dirname(rel), None, problem, 0, 0, 0, 0))
            refold_all = True
            continue
        if rec is not None:
            fresh[blob] = rec
        file_rows.append(("", rel, dirname(rel), blob, None) + stat_key(st, scan.now))
        before = scan.prev.get(rel)
        if before is None:
            new_pairs.append((rel, blob))
        elif before != blob:
            refold_all = True  # a file changed under the same name
    return file_rows, new_pairs, fresh, refold_all


def _source_rows(db: sqlite3.Connection, plan: Plan, file_rows: list[tuple], new_pairs: list[tuple[str, str]],
                 fresh: dict[str, dict], removed: list[tuple[str, str]]) -> bool:
    """The extra sources' (remote-tracking branches...) rows: whole lists, diffed by blob id, added to
    ``file_rows``, ``new_pairs``, ``fresh`` and ``removed``.  True when everything must be folded again.

    A work-tree file hides a source's entry with the same path; an entry already folded (same path and
    blob) from elsewhere is the same event, which the reducer would drop anyway.
    """
    scan = plan.scan
    refold_all = False
    if new_pairs and plan.stamps and db.execute(
            "SELECT 1 FROM files WHERE src!='' LIMIT 1").fetchone() and any(db.execute(
            "SELECT 1 FROM files WHERE path=? AND src!='' LIMIT 1", (p,)).fetchone() for p, _b in new_pairs):
        refold_all = True  # a new work-tree file hides an entry that may have been folded
    local_now = {rel for rel, _st, _problem in scan.present}
    gone_now = set(scan.gone)

    def hidden(p: str) -> bool:
        return p in local_now or (p not in gone_now and db.execute(
            "SELECT 1 FROM files WHERE path=? AND src='' LIMIT 1", (p,)).fetchone() is not None)

    for name in set(plan.stamps) - {s.name for s in plan.sources}:
        refold_all = True
        db.execute("DELETE FROM files WHERE src=?", (name,))
    for src in plan.sources:
        if plan.stamps.get(src.name) == src.stamp:
            continue
        now = dict(src.entries())
        old = dict(db.execute("SELECT path, blob FROM files WHERE src=?", (src.name,)).fetchall())
        for path, b in old.items():
            if now.get(path) != b:
                removed.append((src.name, path))
                refold_all = True
        added = [(p, b) for p, b in now.items() if old.get(p) != b]
        have = lookup(db, added)
        missing = [pair for pair in added if pair not in have]  # (every file row has its own parse row)
        if missing:
            data = src.read(sorted({b for _p, b in missing}))
            parsed = parse_items([(p, data[b]) for p, b in missing if b in data])
            store_parsed(db, parsed)
            fresh.update({b: marshal.loads(r) for _p, b, r in parsed if b not in fresh})
        batch = set(new_pairs)
        for p, b in added:
            file_rows.append((src.name, p, "@", b, None, 0, 0, 0, 0))
            if (p, b) in batch or hidden(p) or db.execute(
                    "SELECT 1 FROM files WHERE path=? AND blob=? LIMIT 1", (p, b)).fetchone():
                continue
            batch.add((p, b))
            new_pairs.append((p, b))
    return refold_all


def _write_file_table(db: sqlite3.Connection, plan: Plan, file_rows: list[tuple],
                      removed: list[tuple[str, str]]) -> None:
    """The file table, exactly as scanned."""
    scan = plan.scan
    for d in scan.gone_dirs:
        db.execute("DELETE FROM files WHERE src='' AND dir=?", (sql_path(d),))
        db.execute("DELETE FROM dirs WHERE path=?", (sql_path(d),))
    db.executemany("DELETE FROM files WHERE src=? AND path=?", [(src, sql_path(p)) for src, p in removed])
    _insert_files(db, file_rows)
    db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?)", [(sql_path(d), m) for d, m in scan.dirs.items()])


def _insert_files(db: sqlite3.Connection, rows: list[tuple]) -> None:
    """Rows of the file table: (src, path, dir, blob, problem, size, mtime, ino, ctime)."""
    rows.sort(key=lambda r: (r[1], r[0]))  # (in key order the b-trees grow at one end: less work)
    db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?)",
                   [(r[0], sql_path(r[1]), sql_path(r[2])) + r[3:] for r in rows])
