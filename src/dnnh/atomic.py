"""Atomic file writes: a crash or a full disk never leaves a half-written model, index or split.

Data goes to a temporary file ``.<name>.<random>.tmp`` in the target's folder, is fsynced, then
renamed over the target (``os.replace`` is atomic on one filesystem), and the folder is fsynced so
the rename itself survives a power loss; on any error the temporary file is removed and the old
target is untouched.

Modes: a new file gets the mode any ``open()`` would give it (0666 less the umask, default ACLs
applied): the temporary file is created with ``os.open(..., 0o666)`` rather than ``mkstemp``
(which makes 0600), so the kernel applies the umask and nothing has to read it. An existing
target keeps its mode, so a user's ``chmod`` survives the next write.

Leftovers: a process killed mid-write (``kill -9``, power loss) cannot remove its temporary file.
The next write to the same target removes the ones left for that target: only names matching
``.<name>.<8 random characters>.tmp`` exactly, and only those no live writer holds. A writer
holds an exclusive ``flock`` on its temporary file until it is renamed, and the lock dies with the
process, so "lock free" means "abandoned"; where ``fcntl`` is missing (Windows) only leftovers
older than an hour are removed.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import string
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_ALPHABET = string.ascii_lowercase + string.digits + "_"
STALE_AFTER_S = 3600.0  # without fcntl: a leftover this old is abandoned


def _temp_pattern(name: str) -> re.Pattern[str]:
    """The names our writes to ``name`` use (and mkstemp used before): nothing else is ever removed."""
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def _lock(fd: int, block: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove abandoned temporary files of earlier writes to ``path``; returns what was removed."""
    path = Path(path)
    pattern = _temp_pattern(path.name)
    removed: list[Path] = []
    try:
        candidates = [path.parent / n for n in os.listdir(path.parent) if pattern.fullmatch(n)]
    except OSError:
        return removed
    for tmp in candidates:
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if fcntl is None and time.time() - st.st_mtime < STALE_AFTER_S:
                continue
            if not _lock(fd, block=False):
                continue  # a live writer holds it
            if os.stat(tmp, follow_symlinks=False).st_ino == st.st_ino:  # still the file we locked
                os.unlink(tmp)
                removed.append(tmp)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, locked temporary file beside ``path`` with the mode the finished file must have."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        keep_mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        keep_mode = None
    while True:
        tmp = path.parent / f".{path.name}.{''.join(secrets.choice(_ALPHABET) for _ in range(8))}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        _lock(fd, block=True)
        if os.fstat(fd).st_nlink == 0:  # a cleaner removed it between create and lock: take another name
            os.close(fd)
            continue
        if keep_mode is not None:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, keep_mode)
            else:
                os.chmod(tmp, keep_mode)
        return fd, tmp


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` only when the block exits cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = _create_temp(path)
    fh = os.fdopen(fd, "wb")
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        os.replace(tmp, path)  # still locked: a concurrent cleaner cannot take the file away first
        fsync_dir(path.parent)
    except BaseException:
        with suppress(OSError):  # closing flushes; a full disk must not hide the first error
            fh.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        fh.close()  # releases the lock (a second close is a no-op)


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
