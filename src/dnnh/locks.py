"""One writer at a time: an OS file lock held while a process writes a run, a bench folder or an index.

Two ``dnnh train`` into one ``--run`` used to both finish "successfully" with one run lost (or a
mix of the two). Now the first holds ``fcntl.flock`` on a lock file for as long as it writes and
the second gets one line naming the holder's PID. The kernel drops the lock when the holder exits,
``kill -9`` included, so a crashed run never leaves a stale lock behind; the lock file itself
stays (an empty marker, harmless) because deleting it would race with the next locker.

Commands that only read a run (``dnnh eval``, ``encode``, ``index build --run``) check the lock
at their start (:func:`refuse_if_written`) without taking it: scoring a run while ``train`` writes
it would encode one epoch's weights while the next is saved.

Within one process, :class:`RWLock` lets many readers (searches) or one writer hold an object.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Iterator

from dnnh.errors import LockedError  # another process holds the lock (re-exported: callers import it here)

LOCK_NAME = ".dnnh.lock"
__all__ = ["FileLock", "LockedError", "RWLock", "lock_file", "lock_folder", "refuse_if_written"]


class FileLock:
    """An exclusive, non-blocking lock on ``path``; ``what`` names the thing it guards in messages."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{self.what} is being written by another dnnh process (PID {holder}); "
                              "wait for it to finish or choose another path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def lock_folder(folder: str | Path, what: str = "folder") -> FileLock:
    """The lock of a folder a process writes many files into (a run directory, a bench folder)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file; choose a folder")
    return FileLock(folder / LOCK_NAME, f"{what} {folder}")


def refuse_if_written(folder: str | Path, what: str, command: str) -> None:
    """A :class:`LockedError` (one line, the holder's PID) when another process holds ``folder``'s lock.

    Only looks: the lock file is neither made (a read-only run stays untouched) nor held, so two
    readers never block each other. ``command`` names the reader in the message. A lock taken
    just after this check is not seen; what a reader then computes still names the weights it
    loaded (:attr:`dnnh.encoder.Encoder.weights_digest`), and its writes into the folder take the lock."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file (no writer ever), or one we may not read: nothing to see
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        raise LockedError(f"{what} {folder} is being written by another dnnh process (PID {holder}): a dnnh train "
                          f"(or a scoring) holds it; dnnh {command} reads it when that is done, so that its codes "
                          "and figures are of one model: wait for it to finish") from None
    finally:
        os.close(fd)  # closing drops the shared lock, if taken


def lock_file(target: str | Path, what: str = "file") -> FileLock:
    """The lock of one file replaced as a whole (an index): ``.<name>.lock`` beside it."""
    target = Path(target)
    return FileLock(target.parent / f".{target.name}.lock", f"{what} {target}")


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
