"""The store's write-ahead log (``wal.log``): the one owner of its line format and recovery rules.

One record a line, ``<crc32 hex> <json>\\n``, appended and fsynced before a write is acknowledged.
Reading it back after a crash tells two failures apart, as PostgreSQL and SQLite do (refuse
rather than guess):

- a **torn tail**: bytes after the last newline (an append cut off mid-write, or the zeros a
  power loss leaves where the data never landed). It was never acknowledged, so it is cut from
  the file and reading goes on as if it had never been written;
- a **complete line** (it ends in its newline) whose checksum fails or that is not a record is
  damage, wherever it is, the last line included: acknowledged writes cannot be trusted. An error
  naming the file and the record, and nothing is changed.

An append that fails (a full disk, an I/O error) is rolled back: the file is cut back to where
the record began, so a failed write is never replayed and never corrupts the next one. When even
that fails the journal refuses every later append until the store is reopened.

Also here: :func:`write_durably` for the added items' images, which the log's records name.
"""

from __future__ import annotations

import errno
import json
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

LOG = "wal.log"


class StoreError(ValueError):
    """A store folder that cannot be used as it is (a ValueError: the CLI prints it as one line)."""


class StoreWriteError(StoreError):
    """A write the disk refused (full, quota, I/O error): nothing of it is stored, nothing replayed.

    ``status`` is the HTTP answer: 507 (Insufficient Storage) when the disk or quota is full,
    503 for any other failure."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


def write_failure(path: Path, exc: OSError, what: str) -> StoreWriteError:
    """The one-line error of a write to ``path`` the OS refused; ``what`` says what was lost
    ("the add of 2 images was not stored, nothing of it was kept")."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    why = "the disk is full" if exc.errno == errno.ENOSPC else (
        "the disk quota is exceeded" if exc.errno == errno.EDQUOT else exc.strerror or type(exc).__name__)
    return StoreWriteError(f"{what}: cannot write {path} ({why}); "
                           + ("free some space and retry" if full else "retry later"), 507 if full else 503)


def encode_record(record: dict) -> bytes:
    body = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return f"{zlib.crc32(body.encode()):08x} {body}\n".encode()


def decode_record(line: bytes) -> dict | None:
    """The record of one log line, or None when it is damaged (bad checksum, not JSON)."""
    try:
        crc, body = line.split(b" ", 1)
        if int(crc, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("seq"), int) else None


def read_records(path: Path) -> Iterator[dict]:
    """Every record of the log at ``path`` in order (none when it does not exist), after cutting
    off a torn tail; :class:`StoreError` on a damaged complete line (see the module docstring)."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1          # bytes after the last newline: a torn tail
    lines = data[:end].split(b"\n")[:-1]
    for number, line in enumerate(lines, 1):
        record = decode_record(line)
        if record is None:
            where = f"record {number} (of {len(lines)}{', the last' if number == len(lines) else ''})"
            raise StoreError(f"{path} is damaged at {where}: a complete record whose checksum fails; "
                             "acknowledged writes cannot be trusted: restore the store from a backup")
        yield record
    if end < len(data):
        with open(path, "r+b") as fh:  # never acknowledged: cut it off
            fh.truncate(end)
            os.fsync(fh.fileno())


class Journal:
    """The log opened for appending: each :meth:`append` is on disk when it returns, or not at all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = open(path, "ab", buffering=0)  # O_APPEND, no buffer to leak later
        self._size = self._fh.seek(0, os.SEEK_END)
        self.broken: str | None = None  # why appends are refused (a failed write could not be undone)

    @property
    def closed(self) -> bool:
        return self._fh is None

    def append(self, record: dict, what: str = "the write was not stored") -> None:
        """Append one record durably; :class:`StoreWriteError` when the OS refuses (rolled back)."""
        fh = self._require()
        line = encode_record(record)
        try:
            write_line(fh.fileno(), line)
        except OSError as exc:
            self._undo()
            raise write_failure(self.path, exc, what) from None
        self._size += len(line)

    def _undo(self) -> None:
        """Cut the file back to the last acknowledged record; when that fails, refuse appends."""
        fh = self._fh
        assert fh is not None
        try:
            os.ftruncate(fh.fileno(), self._size)
            os.fsync(fh.fileno())
        except OSError as exc:
            self.broken = (f"a failed write to {self.path} could not be undone ({exc}); "
                           "restart the server (its next start cuts the torn record off)")
            try:
                fh.close()
            except OSError:
                pass
            self._fh = None

    def clear(self) -> None:
        """Empty the log (its records are in a committed, durable snapshot)."""
        fh = self._require()
        os.ftruncate(fh.fileno(), 0)
        os.fsync(fh.fileno())
        self._size = 0

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

    def _require(self) -> BinaryIO:
        if self._fh is None:
            raise StoreWriteError(self.broken) if self.broken else StoreError(f"the log {self.path} is closed")
        return self._fh


def write_line(fd: int, data: bytes) -> None:
    """Append all of ``data`` to the log open as ``fd`` (O_APPEND) and fsync it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write and fsync ``path`` in place. Safe for an added item's image without a temporary file:
    it is written before the log record that makes it part of the store, and a file no record
    names (a crash mid-write) is removed on the next open."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
