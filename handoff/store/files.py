"""The ``.handoffs/`` directory on disk: atomic publishing and reading.

Publishing: the bytes go to a temp file outside the work tree (in the git
dir), are fsynced, then hard-linked to the final name.  ``os.link`` fails if
the name exists, so an event can never be overwritten, and a reader or
watcher never sees a half-written file.  The directory is fsynced after.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path

from handoff.core.yaml.codec import MAX_FILE_BYTES
from handoff.errors import HandoffError

EVENTS = "events"


def publish(root: Path, rel_path: str, data: bytes, tmp_dir: Path) -> Path:
    """Atomically create ``root/rel_path`` with ``data``; refuse to overwrite."""
    tmp = stage(data, tmp_dir, rel_path.rsplit("/", 1)[-1])
    try:
        return link(tmp, root, rel_path)
    finally:
        discard([tmp])


def stage(data: bytes, tmp_dir: Path, name: str) -> Path:
    """Write ``data`` to a fresh temp file outside the work tree and fsync it (the first half of publishing)."""
    tmp = tmp_dir / f"{name}.{os.getpid()}.part"
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        discard([tmp])
        raise _os_error(exc, tmp) from None
    return tmp


def refuse_symlinks(top: Path, rel: str, *, create: bool = False) -> None:
    """Refuse if a component of ``top/rel`` below ``top`` is a symlink: one lstat each, no walk.

    A committed symlink (``.handoffs`` itself, ``events``, a month or a day folder) would make a write
    land outside the repository, or a read come from outside it.  With ``create``, missing components
    are made (real directories, one ``mkdir`` each: ``Path.mkdir(parents=True)`` would follow a
    symlink on the way); without, the first missing one ends the check (nothing there to follow).  A
    component that is a file also ends it: the caller then fails on it with its own error.
    """
    cur = str(top)
    for part in rel.split("/"):
        cur = f"{cur}/{part}"
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            if not create:
                return
            try:
                os.mkdir(cur)
            except FileExistsError:  # made meanwhile (another writer): look again
                pass
            st = os.lstat(cur)
        if stat.S_ISLNK(st.st_mode):
            shown = os.path.relpath(cur, top)
            raise HandoffError("symlink_refused", f"{shown} is a symlink (to {_target(cur)}): handoff never "
                                                  "reads or writes through a symlink under .handoffs/",
                               hint=f"remove the link (`rm {shown}`, plus `git rm --cached {shown}` if it is "
                                    "committed) and put a real directory there (copy in what it points to if "
                                    "those are your events); `handoff doctor` lists every symlink under .handoffs/")
        if not stat.S_ISDIR(st.st_mode):
            return


def is_real_file(top: Path, rel: str) -> bool:
    """``top/rel`` is a regular file reached through real directories only (no symlink on the way)."""
    try:
        refuse_symlinks(top, rel)
        return stat.S_ISREG(os.lstat(f"{top}/{rel}").st_mode)
    except (HandoffError, OSError):
        return False


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def link(tmp: Path, root: Path, rel_path: str) -> Path:
    """Make a staged temp file visible at ``root/rel_path`` in one step; never overwrite (the second half).

    Every directory on the way is made or checked with lstat just before the link (``refuse_symlinks``),
    so a symlinked folder never receives the file.
    """
    final = root / rel_path
    try:
        refuse_symlinks(root, rel_path.rsplit("/", 1)[0], create=True)
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise HandoffError("id_conflict", f"{rel_path} already exists; events are never overwritten",
                               hint="retry: a new id will be generated") from None
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            # No hard links here (other filesystem, FAT...): a dot-named copy beside the target, then rename.
            side = final.parent / f".{final.name}.part"
            discard([side])  # a leftover, or a planted symlink: never written through
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with open(tmp, "rb") as src, open(fd, "wb") as dst:
                dst.write(src.read())
                dst.flush()
                os.fsync(dst.fileno())
            if os.path.lexists(final):
                os.unlink(side)
                raise HandoffError("id_conflict", f"{rel_path} already exists", hint="retry") from None
            os.rename(side, final)
    except OSError as exc:
        raise _os_error(exc, final) from None
    _fsync_dir(final.parent)
    return final


def discard(tmps: list[Path]) -> None:
    for tmp in tmps:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def sweep_temp(tmp_dir: Path) -> None:
    """Remove staged files and tree objects a killed writer left behind.  Call only under the writer lock.

    Every writer makes its temp files (``*.part``) under that lock and removes them before letting go,
    so any found under it belongs to a writer that was killed.  ``tree.<pid>.<n>`` is the name
    ``gittree`` used before it ended in ``.part``.
    """
    try:
        names = os.listdir(tmp_dir)
    except OSError:
        return
    discard([tmp_dir / n for n in names if n.endswith(".part") or _OLD_TREE.fullmatch(n)])


_OLD_TREE = re.compile(r"tree\.\d+\.\d+")


def _os_error(exc: OSError, path: Path) -> HandoffError:
    if exc.errno == errno.ENOSPC:
        return HandoffError("disk_full", f"no space left on device writing {path}",
                            hint="free some disk space and run the command again; nothing was written")
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return HandoffError("permission_denied", f"cannot write {path}: {exc.strerror}",
                            hint="check the permissions of .handoffs/ and the git directory")
    return HandoffError("io_error", f"cannot write {path}: {exc}", hint="check the disk and permissions")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_event_files(root: Path) -> list[tuple[str, os.stat_result | None, str | None]]:
    """Every candidate file under ``root/events``: (rel_path, stat, problem).

    Symlinks and non-regular files are reported, never followed.  Names
    starting with a dot (temp files) are skipped.
    """
    refuse_symlinks(root.parent, f"{root.name}/{EVENTS}")  # the walk below follows neither, but would start in them
    out: list = []
    base = root / EVENTS
    stack = [base]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
                if entry.is_symlink():
                    out.append((rel, None, "symlink"))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    if entry.name.endswith(".yaml"):
                        out.append((rel, entry.stat(follow_symlinks=False), None))
                else:
                    out.append((rel, None, "not a regular file"))
    return out


def read_event_file(root: Path, rel: str, st: os.stat_result | None) -> bytes:
    """At most one byte past the cap (so the codec reports the size without loading a huge file); a file
    turned into a symlink since it was listed is not followed (ELOOP)."""
    with open(os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
        return fh.read(MAX_FILE_BYTES + 1)


@contextmanager
def file_lock(path: Path):
    """An exclusive flock: serialises writers across processes and worktrees; dies with its holder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _os_error(exc, path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def atomic_write_local(path: Path, data: bytes) -> None:
    """Replace a private (never committed) file atomically: caches, cursors, clocks."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # (init writes its template files here too, into .handoffs/: a planted link at the temp name is not followed)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        discard([tmp])
        raise _os_error(exc, path) from None


def write_hint(path: Path, data: bytes) -> None:
    """Overwrite a small private hint file in place: no temp file, no rename, no fsync.

    For values that are only a hint, like the writer's clock (fixed length): a torn or lost value is
    read as absent, and the caller falls back to what the event files say.  Renaming over a file (or
    truncating it) makes ext4 flush its data; writing in place does not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size != len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
