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

This file is the index's facade: the names the rest of the package uses.  The
modules, in the order a read meets them:

* ``refresh``: ``state()`` and this thread's ``Index`` of a workspace, brought
  up to date on each read; ``conn``: its connection (open, repair, WAL, sync);
  ``db``: the files' schemas, the code version that keys them, damage.
* ``scan``: what changed in the work tree (``Plan``); ``sources``: extra sources.
* ``apply``: a plan applied; ``parse``: new files read, hashed and parsed;
  ``records``: the parse cache's rows.
* ``fold``: new events folded onto the saved state; ``refold``: everything
  folded again from the parse cache; ``save``: a fold written back.
* ``lazy``: the state read lazily (``State``); ``narrow``: the parts of it a
  view or a watcher's timers use; ``ackfloor``: an inbox's candidates past
  what its session acknowledged.  ``stats``: counters and tracing.
"""
from __future__ import annotations

import marshal  # (re-exported: callers read records with ``index.marshal``)
import sqlite3  # (re-exported: callers catch ``index.sqlite3.Error``)

from handoff.index.ackfloor import for_inbox_unacked
from handoff.index.db import INDEX_FORMAT, code_version, damaged_files, note_rebuilt, trouble, unreadable
from handoff.index.lazy import State
from handoff.index.narrow import for_container, for_inbox, timer_units
from handoff.index.records import blob_id
from handoff.index.refresh import drop, load_records, note_written, read_all_records, recover, state
from handoff.index.sources import SOURCES, Source
from handoff.index.stats import STATS

__all__ = [
    "INDEX_FORMAT", "SOURCES", "STATS", "Source", "State", "blob_id", "code_version", "damaged_files", "drop",
    "for_container", "for_inbox", "for_inbox_unacked", "load_records", "marshal", "note_rebuilt", "note_written", "read_all_records",
    "recover", "sqlite3", "state", "timer_units", "trouble", "unreadable",
]
