"""The .dhi file: round trips (plain and memory-mapped) and clear errors for damaged files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from dnnh.index import HammingIndex, IndexFormatError
from dnnh.index.fileformat import HEADER, MAGIC
from dnnh.codes import pack_bits
from support.problems import clustered_bits, random_bits
from dnnh.testing.reference import assert_same_range, knn


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    bits = clustered_bits(rng, 500, 36, centres=8)
    ids = rng.choice(2**33, 500, replace=False)  # beyond int32: stored as int64
    index = HammingIndex(36)
    index.add(pack_bits(bits), ids=ids)
    index.remove(ids[:50])
    path = tmp_path / "db.dhi"
    index.save(path)
    return path, bits[50:], ids[50:]


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("kernel", ["numpy", "numba"])
def test_round_trip_searches_the_same(saved, mmap: bool, kernel: str, range_reference) -> None:
    path, bits, ids = saved
    index = HammingIndex.load(path, mmap=mmap, kernel=kernel)
    assert index.ntotal == 450 and index.nbits == 36
    q = clustered_bits(np.random.default_rng(11), 6, 36, centres=8)
    d, i = index.search(pack_bits(q), 40)
    wd, wi = knn(bits, ids, q, 40)
    np.testing.assert_array_equal(d, wd)
    np.testing.assert_array_equal(i, wi)
    assert_same_range(index.range_search(pack_bits(q), 3), range_reference(bits, ids, q, 3))
    index.add(pack_bits(bits[:5]))  # a loaded (even mapped) index stays writable; the file does not change
    assert index.ntotal == 455
    assert HammingIndex.load(path).ntotal == 450


def test_default_ids_and_empty_index_round_trip(tmp_path: Path) -> None:
    empty = HammingIndex(12)
    empty.save(tmp_path / "empty.dhi")
    loaded = HammingIndex.load(tmp_path / "empty.dhi", mmap=True)
    assert loaded.ntotal == 0 and loaded.nbits == 12
    index = HammingIndex(20)
    index.add(pack_bits(random_bits(np.random.default_rng(12), 30, 20)))
    index.save(tmp_path / "plain.dhi")
    again = HammingIndex.load(tmp_path / "plain.dhi")
    np.testing.assert_array_equal(again.ids, np.arange(30))
    np.testing.assert_array_equal(again.codes(), index.codes())
    again.add(index.codes()[:2])
    assert again.ids[-2:].tolist() == [30, 31]


def test_save_is_atomic_and_leaves_no_temporary(tmp_path: Path, saved) -> None:
    path, _, _ = saved
    before = path.read_bytes()
    index = HammingIndex(36)
    index.add(pack_bits(random_bits(np.random.default_rng(13), 3, 36)))
    index.save(path)
    assert path.read_bytes() != before
    assert sorted(os.listdir(path.parent)) == ["db.dhi"]


def _rewrite_header(raw: bytes, **changes: int) -> bytes:
    fields = list(HEADER.unpack(raw[:64]))
    names = ["magic", "version", "hsize", "nbits", "nw", "ntotal", "ndistinct", "flags", "reserved", "next_id", "crc", "hcrc"]
    for key, value in changes.items():
        fields[names.index(key)] = value
    head = HEADER.pack(*fields)
    return head[:60] + struct.pack("<I", zlib.crc32(head[:60])) + raw[64:]


def test_truncated_file(saved) -> None:
    path, _, _ = saved
    raw = path.read_bytes()
    for cut in (0, 10, 63, 64, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(IndexFormatError, match="truncated"):
            HammingIndex.load(path)
    path.write_bytes(raw + b"\0" * 64)
    with pytest.raises(IndexFormatError, match="longer than its header says"):
        HammingIndex.load(path)


def test_every_flipped_byte_is_caught(saved) -> None:
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    positions = list(range(64)) + list(np.random.default_rng(14).integers(64, len(raw), 40))
    for pos in positions:
        bad = bytearray(raw)
        bad[pos] ^= 0x5A
        path.write_bytes(bytes(bad))
        for mmap in (False, True):
            with pytest.raises(IndexFormatError):
                HammingIndex.load(path, mmap=mmap)


def test_payload_checksum_message(saved) -> None:
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="corrupt: payload checksum"):
        HammingIndex.load(path)


def test_wrong_magic_and_version(saved, tmp_path: Path) -> None:
    path, _, _ = saved
    raw = path.read_bytes()
    path.write_bytes(b"PK\x03\x04" + raw[4:])
    with pytest.raises(IndexFormatError, match=r"not a dnnh Hamming index.*expected b'DNNHHIX"):
        HammingIndex.load(path)
    path.write_bytes(_rewrite_header(raw, version=2))
    with pytest.raises(IndexFormatError, match="format version 2; this dnnh reads version 1"):
        HammingIndex.load(path)
    np.savez(tmp_path / "codes.npz", codes=np.zeros((2, 2), np.uint8))
    with pytest.raises(IndexFormatError, match="not a dnnh Hamming index"):
        HammingIndex.load(tmp_path / "codes.npz")
    assert MAGIC in raw[:8]


def test_forged_checksums_still_cannot_point_out_of_range(saved) -> None:
    """A file edited with valid checksums must not make the kernels read outside their arrays."""
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    head = HEADER.unpack(bytes(raw[:64]))
    offsets_at = 64 + -(-head[6] * 8 // 64) * 64  # offsets follow the codes section
    raw[offsets_at + 8: offsets_at + 12] = struct.pack("<i", 10**6)
    crc = zlib.crc32(bytes(raw[64:]))
    path.write_bytes(_rewrite_header(bytes(raw), crc=crc))
    with pytest.raises(IndexFormatError, match="out of range"):
        HammingIndex.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HammingIndex.load(tmp_path / "nope.dhi")
