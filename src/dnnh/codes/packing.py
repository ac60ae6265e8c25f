"""Packing 0/1 codes into bytes.

Bit k of a code lives in byte k // 8 at position k % 8 counted from the least significant bit,
which is the order FAISS's binary indexes use (`np.packbits(..., bitorder="little")`), so packed
codes can be handed to FAISS unchanged. Code lengths that are not a multiple of 8 (12, 24 are
fine; 12 is not) are padded with zero bits, which never change a Hamming distance.
"""

from __future__ import annotations

import numpy as np
from dnnh.errors import InputTypeError


def code_bytes(nbits: int) -> int:
    """Bytes needed to hold one packed code of ``nbits`` bits."""
    if int(nbits) != nbits or nbits <= 0:
        raise ValueError(f"nbits must be a positive integer, got {nbits!r}")
    return (int(nbits) + 7) // 8


def as_bits(bits: np.ndarray, name: str = "bits") -> np.ndarray:
    """Validate a 0/1 code matrix of shape (n, nbits) and return it as uint8."""
    arr = np.asarray(bits)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, nbits), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    # min/max rather than np.isin: isin on a million codes costs seconds and a large temporary.
    if arr.size and (arr.min() < 0 or arr.max() > 1 or not np.issubdtype(arr.dtype, np.integer)):
        if not np.issubdtype(arr.dtype, np.integer) and np.all((arr == 0) | (arr == 1)):
            return arr.astype(np.uint8)
        bad = arr[(arr != 0) & (arr != 1)]
        raise ValueError(f"{name} must hold only 0 and 1; found values such as {np.unique(bad)[:5]}")
    return arr.astype(np.uint8, copy=False)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack an (n, nbits) 0/1 array into an (n, ceil(nbits / 8)) uint8 array, bit 0 in the LSB of byte 0."""
    arr = as_bits(bits)
    return np.packbits(arr, axis=1, bitorder="little")


def unpack_bits(packed: np.ndarray, nbits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (n, ceil(nbits / 8)) uint8 -> (n, nbits) uint8 0/1."""
    arr = np.asarray(packed)
    if arr.dtype != np.uint8:
        raise InputTypeError(f"packed codes must be uint8, got {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"packed codes must be 2-D (n, nbytes), got shape {arr.shape}")
    expected = code_bytes(nbits)
    if arr.shape[1] != expected:
        raise ValueError(f"{nbits}-bit codes pack into {expected} bytes per code, got {arr.shape[1]}")
    return np.unpackbits(arr, axis=1, count=int(nbits), bitorder="little")


def hamming_distances(query_packed: np.ndarray, db_packed: np.ndarray) -> np.ndarray:
    """All Hamming distances between packed codes, (nq, ndb) int32. Dense: for small blocks only."""
    q = np.asarray(query_packed, dtype=np.uint8)
    d = np.asarray(db_packed, dtype=np.uint8)
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"code width mismatch: queries have {q.shape[1]} bytes, database {d.shape[1]}")
    xor = np.bitwise_xor(q[:, None, :], d[None, :, :])
    return np.bitwise_count(xor).sum(axis=2, dtype=np.int32)
