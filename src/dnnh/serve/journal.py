"""The store's write-ahead log (``wal.log``): the one owner of its line format and recovery rules.

One record a line, ``<crc32 hex> <json>\\n``, appended and fsynced before a write is acknowledged.
Reading it back after a crash tells two failures apart:

- a damaged **last** line (no newline, a bad checksum, not JSON; or damage followed only by
  empty lines) is an append that was cut off mid-write. It was never acknowledged, so it is cut
  from the file and reading goes on as if it had never been written;
- a damaged line **before** the end means acknowledged writes after it cannot be trusted: an
  error naming the file and the record, and nothing is changed.

Also here: :func:`write_durably` for the added items' images, which the log's records name.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

LOG = "wal.log"


class StoreError(ValueError):
    """A store folder that cannot be used as it is (a ValueError: the CLI prints it as one line)."""


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
    off a torn last append; :class:`StoreError` on damage before the end (see the module docstring)."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    good_end = 0
    for number, line in enumerate(lines, 1):
        last = number == len(lines)
        if last and not line:
            return
        record = None if last else decode_record(line)  # a line without its newline is torn
        if record is None:
            if last or not any(lines[number:]):
                with open(path, "r+b") as fh:  # a torn tail: never acknowledged, cut it off
                    fh.truncate(good_end)
                    os.fsync(fh.fileno())
                return
            raise StoreError(f"{path} is damaged at record {number} (of {len(lines) - 1}); "
                             "acknowledged writes after it cannot be trusted: restore the store from a backup")
        good_end += len(line) + 1
        yield record


class Journal:
    """The log opened for appending: each :meth:`append` is on disk when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = open(path, "ab")

    @property
    def closed(self) -> bool:
        return self._fh is None

    def append(self, record: dict) -> None:
        fh = self._require()
        fh.write(encode_record(record))
        fh.flush()
        os.fsync(fh.fileno())

    def clear(self) -> None:
        """Empty the log (its records are in a committed snapshot)."""
        fh = self._require()
        fh.truncate(0)
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _require(self) -> BinaryIO:
        if self._fh is None:
            raise StoreError(f"the log {self.path} is closed")
        return self._fh


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
