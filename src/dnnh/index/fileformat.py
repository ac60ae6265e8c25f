"""The ``.dhi`` file: an index stored as its grouped arrays, so a load can memory-map it as is.

Layout (little-endian). A 64-byte header, then four sections, each starting on a 64-byte boundary:

====== ======= ===================================================================
offset type    field
====== ======= ===================================================================
0      8 bytes magic ``b"DNNHHIX\\x00"``
8      u32     format version (1)
12     u32     header size (64)
16     u32     nbits
20     u32     words per code (ceil(nbits / 64))
24     u64     ntotal, items
32     u64     ndistinct, distinct codes
40     u32     flags: 1 positions int64 (else int32), 2 ids stored, 4 ids int64 (else int32),
               8 no offsets section (every code held by one item: offsets are 0..ndistinct)
44     u32     reserved (0)
48     i64     next default id
56     u32     CRC-32 of everything after the header
60     u32     CRC-32 of header bytes 0..59
====== ======= ===================================================================

Sections: distinct codes (ndistinct x words u64), bucket offsets (ndistinct + 1; left out under flag
8), members (ntotal positions; offsets and members are int32 below 2**31 items, else int64), ids
(ntotal, only when they are not simply 0..ntotal-1). A file of n random 64-bit codes with int32
ids thus takes 16 bytes a code, and ``load(mmap=True)`` searches it in place: the file's pages
are the index's arrays, read on demand. The counts fix the file size, so a truncated file is caught
before any array is read; the two checksums catch flipped bytes. A save writes a temporary file in
the same folder and renames it into place, so a crash never leaves a half-written index under the
real name.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dnnh.atomic import atomic_open
from dnnh.index.groups import Groups
from dnnh.index.layout import n_words

MAGIC = b"DNNHHIX\x00"
VERSION = 1
HEADER = struct.Struct("<8sIIIIQQIIqII")
ALIGN = 64
F_MEMBERS64, F_IDS, F_IDS64, F_NO_OFFSETS = 1, 2, 4, 8
FLAGS_KNOWN = 16  # flags at or above this are not this version's
assert HEADER.size == 64


class IndexFormatError(ValueError):
    """The file is not a readable dnnh index: wrong magic, version, size or checksum."""


@dataclass
class Stored:
    nbits: int
    groups: Groups
    ids: np.ndarray | None
    next_id: int


def _pad(n: int) -> int:
    return -n % ALIGN


def _sections(nbits: int, ntotal: int, ndistinct: int, flags: int) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    nw = n_words(nbits)
    pos = np.dtype("<i8" if flags & F_MEMBERS64 else "<i4")
    specs = [("codes", np.dtype("<u8"), (ndistinct, nw))]
    if not flags & F_NO_OFFSETS:
        specs.append(("offsets", pos, (ndistinct + 1,)))
    specs.append(("members", pos, (ntotal,)))
    if flags & F_IDS:
        specs.append(("ids", np.dtype("<i8" if flags & F_IDS64 else "<i4"), (ntotal,)))
    return specs


def _payload(arrays: list[np.ndarray]) -> Iterator[bytes]:
    for arr in arrays:
        data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        for start in range(0, len(data), 1 << 24):
            yield data[start:start + (1 << 24)].tobytes()
        yield b"\x00" * _pad(len(data))


def save(path: str | Path, stored: Stored) -> None:
    """Write atomically: stream the payload to a temporary file, then the header with both CRCs, fsync, rename."""
    g, ids = stored.groups, stored.ids
    flags = (F_MEMBERS64 if g.members.dtype == np.int64 else 0) | (F_NO_OFFSETS if g.singletons else 0)
    arrays = [g.codes.astype("<u8", copy=False)]
    if not g.singletons:
        arrays.append(g.bucket_offsets.astype(g.members.dtype, copy=False))
    arrays.append(g.members)
    if ids is not None:
        flags |= F_IDS | (F_IDS64 if ids.dtype == np.int64 else 0)
        arrays.append(ids)
    with atomic_open(path) as fh:
        fh.write(b"\x00" * HEADER.size)
        crc = 0
        for chunk in _payload(arrays):
            crc = zlib.crc32(chunk, crc)
            fh.write(chunk)
        head = HEADER.pack(MAGIC, VERSION, HEADER.size, stored.nbits, n_words(stored.nbits), g.ntotal,
                           g.ndistinct, flags, 0, stored.next_id, crc, 0)
        fh.seek(0)
        fh.write(head[:60] + struct.pack("<I", zlib.crc32(head[:60])))


def looks_like_index(path: str | Path) -> bool:
    """Whether ``path`` starts with a dnnh index's magic (a cheap check before replacing a file)."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def read_header(path: str | Path) -> dict[str, int]:
    """Parse and check the header alone: magic, version, header checksum, file size against the counts."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise IndexFormatError(f"{path} is truncated: {size} bytes, a dnnh index header alone takes {HEADER.size}")
    magic, version, hsize, nbits, nw, ntotal, ndistinct, flags, _, next_id, crc, hcrc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise IndexFormatError(f"{path} is not a dnnh Hamming index: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise IndexFormatError(f"{path} is dnnh index format version {version}; this dnnh reads version "
                               f"{VERSION} (rebuild it with `dnnh index build`)")
    if zlib.crc32(raw[:60]) != hcrc:
        raise IndexFormatError(f"{path} is corrupt: header checksum {zlib.crc32(raw[:60]):#010x}, "
                               f"expected {hcrc:#010x}")
    if (hsize != HEADER.size or nbits == 0 or nw != n_words(nbits) or flags >= FLAGS_KNOWN or ndistinct > ntotal
            or (flags & F_NO_OFFSETS and ndistinct != ntotal)):
        raise IndexFormatError(f"{path} has an inconsistent header (nbits {nbits}, words {nw}, "
                               f"{ntotal} items, {ndistinct} distinct, flags {flags})")
    expected = HEADER.size
    for _, dtype, shape in _sections(nbits, ntotal, ndistinct, flags):
        n = dtype.itemsize * int(np.prod(shape))
        expected += n + _pad(n)
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise IndexFormatError(f"{path} is {what}: {size} bytes, expected {expected} for {ntotal} items "
                               f"of {nbits} bits ({ndistinct} distinct)")
    return {"version": version, "nbits": nbits, "ntotal": ntotal, "ndistinct": ndistinct, "flags": flags,
            "next_id": next_id, "crc": crc, "size": size}


def describe(path: str | Path, verify: bool = True) -> dict[str, object]:
    """What an index file holds, decoded from its header (the file is checked in full unless not ``verify``).

    The fields ``dnnh index info`` prints: format version, code length, items, distinct codes,
    file size, the integer types of positions and ids, whether bucket offsets are stored, the next
    default id and the checksum's state. Raises :class:`IndexFormatError` for an unreadable file.
    """
    head = read_header(path)
    if verify:
        load(path, use_mmap=True, verify=True)
    flags = head["flags"]
    ids = ("int64" if flags & F_IDS64 else "int32") if flags & F_IDS else "none (ids are 0..ntotal-1)"
    return {
        "path": str(path), "format_version": head["version"], "nbits": head["nbits"],
        "ntotal": head["ntotal"], "ndistinct": head["ndistinct"], "file_bytes": head["size"],
        "positions": "int64" if flags & F_MEMBERS64 else "int32", "stored_ids": ids,
        "offsets": "implied (one item a code)" if flags & F_NO_OFFSETS else "stored",
        "next_default_id": head["next_id"], "checksum": "ok" if verify else "skipped",
    }


def load(path: str | Path, use_mmap: bool = False, verify: bool = True) -> Stored:
    """Read an index file; with ``use_mmap`` its arrays are views of a copy-on-write file mapping.

    ``verify`` recomputes the payload CRC (reading the whole file once); leave it on unless the file
    was verified before, since a memory-mapped index trusts its bytes.
    """
    path = Path(path)
    head = read_header(path)
    specs = _sections(head["nbits"], head["ntotal"], head["ndistinct"], head["flags"])
    with open(path, "rb") as fh:
        if use_mmap:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        else:
            buf = bytearray(head["size"])
            fh.readinto(buf)
    if verify:
        view = memoryview(buf)[HEADER.size:]
        crc = 0
        for start in range(0, len(view), 1 << 24):
            crc = zlib.crc32(view[start:start + (1 << 24)], crc)
        view.release()
        if crc != head["crc"]:
            raise IndexFormatError(f"{path} is corrupt: payload checksum {crc:#010x}, expected {head['crc']:#010x}")
    arrays, at = {}, HEADER.size
    for name, dtype, shape in specs:
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=at).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
        at += count * dtype.itemsize + _pad(count * dtype.itemsize)
    offsets = arrays.get("offsets", np.zeros(0, arrays["members"].dtype))
    groups = Groups(arrays["codes"], offsets, arrays["members"])
    _check_structure(path, groups, head["nbits"])
    return Stored(head["nbits"], groups, arrays.get("ids"), head["next_id"])


def _check_structure(path: Path, g: Groups, nbits: int) -> None:
    """Bounds the kernels rely on, so even a file with a forged checksum cannot make them read out of range."""
    off, n = g.bucket_offsets, g.ntotal
    ok = g.singletons or (off[0] == 0 and off[-1] == n and (g.ndistinct == 0 or bool((np.diff(off) > 0).all())))
    if ok and n:
        ok = int(g.members.min()) >= 0 and int(g.members.max()) < n
    spare = g.codes.shape[1] * 64 - nbits
    if ok and spare and g.ndistinct:
        ok = not (int(np.bitwise_or.reduce(g.codes[:, -1])) >> (64 - spare))
    if not ok:
        raise IndexFormatError(f"{path} is corrupt: bucket offsets, positions or code padding out of range")
