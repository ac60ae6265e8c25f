"""How codes are held inside the index: packed bytes in, 64-bit words inside.

Callers hand codes packed the way :func:`dnnh.codes.pack_bits` makes them (uint8, bit 0 in the
least significant bit of byte 0, FAISS's order). Inside, a code is ``ceil(nbits / 64)`` little-endian
``uint64`` words, so one XOR and one popcount cover 64 bits and a 48-bit code is a single integer
that can be sorted, hashed and searched. The zero padding bits stay zero, so distances are unchanged.

Everything here is numpy only; the numba kernels take these same arrays.
"""

from __future__ import annotations

from math import comb

import numpy as np

from dnnh.codes.packing import code_bytes

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def n_words(nbits: int) -> int:
    """64-bit words per code."""
    return (int(nbits) + 63) // 64


def check_nbits(nbits: object) -> int:
    """Validate a code length in bits (any positive integer; FAISS would want a multiple of 8)."""
    if isinstance(nbits, bool) or not isinstance(nbits, (int, np.integer)) or int(nbits) <= 0:
        raise ValueError(f"nbits must be a positive integer, got {nbits!r}")
    return int(nbits)


def check_packed(codes: object, nbits: int, what: str) -> np.ndarray:
    """Refuse anything but (n, ceil(nbits/8)) uint8 with zero padding bits, like FAISS refuses non-uint8.

    Casting silently would turn a 0/1 bit matrix or a float array into nonsense codes, so the message
    says what was expected and how to get it.
    """
    nbytes = code_bytes(nbits)
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"{what} must be a numpy uint8 array of shape (n, {nbytes}) packed by "
                        f"dnnh.codes.pack_bits, got {type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise TypeError(f"{what} must be packed uint8 codes of shape (n, {nbytes}) (dnnh.codes.pack_bits), "
                        f"got dtype {codes.dtype}")
    if codes.ndim != 2 or codes.shape[1] != nbytes:
        raise ValueError(f"{what} must have shape (n, {nbytes}) for {nbits}-bit codes "
                         f"({nbytes} bytes each), got shape {codes.shape}")
    spare = nbytes * 8 - nbits
    if spare and codes.shape[0]:
        high = int(np.bitwise_or.reduce(codes[:, -1]))
        if high >> (8 - spare):
            raise ValueError(f"{what} set bits above bit {nbits - 1} (the last byte of a {nbits}-bit code "
                             f"keeps its top {spare} bits zero); were they packed for a longer code?")
    return codes


def to_words(codes: np.ndarray, nbits: int) -> np.ndarray:
    """(n, ceil(nbits/8)) uint8 -> (n, ceil(nbits/64)) uint64, C-contiguous, zero padded."""
    nw = n_words(nbits)
    n = codes.shape[0]
    buf = np.zeros((n, nw * 8), dtype=np.uint8)
    buf[:, : codes.shape[1]] = codes
    return buf.view("<u8").astype(np.uint64, copy=False).reshape(n, nw)


def to_bytes(words: np.ndarray, nbits: int) -> np.ndarray:
    """Inverse of :func:`to_words`."""
    w = np.ascontiguousarray(words, dtype="<u8")
    return w.view(np.uint8).reshape(len(w), -1)[:, : code_bytes(nbits)].copy()


def popcount(x: np.ndarray) -> np.ndarray:
    """Bits set in each element (numpy >= 2.0's ufunc; dnnh.codes relies on it too)."""
    return np.bitwise_count(x)


def word_distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances (nq, m) between word-form codes; int32 for multi-word, uint8 for one word."""
    d = popcount(queries[:, None, 0] ^ codes[None, :, 0])
    if codes.shape[1] == 1:
        return d
    d = d.astype(np.int32)
    for w in range(1, codes.shape[1]):
        d += popcount(queries[:, None, w] ^ codes[None, :, w])
    return d


def mix_hash(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of words, for multi-word codes that cannot be one sort key."""
    h = np.zeros(len(words), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in range(words.shape[1]):
            h = (h ^ words[:, w]) * GOLDEN
            h ^= h >> np.uint64(29)
    return h


def extract_bits(words: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits ``[start, start + width)`` of each code as an integer (width <= 64): an MIH substring."""
    w0, off = divmod(start, 64)
    v = words[:, w0] >> np.uint64(off)
    if off and off + width > 64:
        v = v | (words[:, w0 + 1] << np.uint64(64 - off))
    if width < 64:
        v = v & np.uint64((1 << width) - 1)
    return v


def ball_size(nbits: int, radius: int) -> int:
    """Codes within Hamming distance ``radius`` of a ``nbits``-bit code."""
    return sum(comb(nbits, i) for i in range(0, min(radius, nbits) + 1))


def combinations(n: int, r: int) -> np.ndarray:
    """All r-subsets of range(n) as rows of an (C(n, r), r) int array, in lexicographic order."""
    if r == 0:
        return np.zeros((1, 0), dtype=np.int64)
    rows = np.arange(n, dtype=np.int64)[:, None]
    for _ in range(1, r):
        last = rows[:, -1]
        reps = np.maximum(n - 1 - last, 0)
        base = np.repeat(rows, reps, axis=0)
        starts = np.repeat(last + 1, reps)
        within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        rows = np.concatenate([base, (starts + within)[:, None]], axis=1)
    return rows


def flip_masks(nbits: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks (P, nwords) that flip every set of at most ``radius`` bits, by level, and level offsets.

    XOR-ing a query with these enumerates its Hamming ball in distance order: rows
    ``lims[r]:lims[r+1]`` are the codes at distance exactly r.
    """
    nw = n_words(nbits)
    parts, lims = [], [0]
    for r in range(min(radius, nbits) + 1):
        combo = combinations(nbits, r)
        masks = np.zeros((len(combo), nw), dtype=np.uint64)
        for col in range(r):
            bit = combo[:, col]
            np.bitwise_or.at(masks, (np.arange(len(combo)), bit // 64), np.uint64(1) << (bit % 64).astype(np.uint64))
        parts.append(masks)
        lims.append(lims[-1] + len(masks))
    return np.concatenate(parts), np.asarray(lims, dtype=np.int64)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bits needed for each uint64 (0 for 0), without going through floats."""
    x = x.copy()
    out = np.zeros(len(x), dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        high = x >> np.uint64(shift)
        nz = high != 0
        out += shift * nz
        x = np.where(nz, high, x)
    return out + (x != 0)


def prefix_bounds(codes: np.ndarray, block: int, multiple: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The common prefix of each block of ``block`` consecutive sorted codes: (values, masks).

    Codes sorted lexicographically (word 0 first, each word by value) share, within a block, every
    word before the first one where the block's first and last codes differ, and that word's bits
    above their highest difference. ``masks`` marks those bits, ``values`` holds them; a query's
    distance to any code of block b is at least the popcount of ``(q ^ values[:, b]) & masks[:, b]``.
    Both are (nwords, nblocks) with nblocks padded to a multiple of ``multiple`` (padding: mask 0,
    a bound of 0, so a scan visits those blocks and finds them empty).
    """
    m, nw = codes.shape
    nb = -(-m // block)
    padded = -(-nb // multiple) * multiple
    values = np.zeros((nw, padded), dtype=np.uint64)
    masks = np.zeros((nw, padded), dtype=np.uint64)
    if m == 0:
        return values, masks
    first = codes[0::block]
    last = codes[np.minimum(np.arange(nb) * block + block - 1, m - 1)]
    same_so_far = np.ones(nb, dtype=bool)
    full = np.uint64(2**64 - 1)
    for w in range(nw):
        diff = first[:, w] ^ last[:, w]
        length = _bit_length(diff)
        # bits above the highest difference: all 64 where the words are equal
        keep = np.where(length >= 64, np.uint64(0), full << np.minimum(length, 63).astype(np.uint64))
        mask = np.where(same_so_far, keep, np.uint64(0))
        masks[w, :nb] = mask
        values[w, :nb] = first[:, w] & mask
        same_so_far &= diff == 0
    return values, masks


DIRECTORY_CHUNK = 1 << 20  # directory entries computed a step, bounding temporary memory


def directory_bits(m: int, nbits: int) -> int:
    """Top bits the directory indexes: about four distinct codes a bucket (1-2 bytes a code)."""
    return max(1, min(min(nbits, 64), (max(m, 2) - 1).bit_length() - 2))


def directory(codes: np.ndarray, nbits: int) -> tuple[np.ndarray, np.uint64]:
    """Where each value of the sorted codes' top bits starts: ``(starts (2**b + 1,), shift)``.

    Codes sorted lexicographically are sorted by word 0, so those with top bits ``p``
    (``word0 >> shift == p``, the top ``b`` of the code's first min(nbits, 64) bits) are the run
    ``codes[starts[p]:starts[p + 1]]``. An exact lookup reads that run (a cache line on random
    codes) and a small ball of prefixes gives the candidates of a radius search, so lookups and
    radius search share the one sorted copy of the codes instead of a hash table or MIH tables.
    int32 entries below 2**31 codes: about 1 byte a code.
    """
    m = len(codes)
    b = directory_bits(m, nbits)
    shift = min(nbits, 64) - b
    first = np.ascontiguousarray(codes[:, 0]) if m else np.zeros(0, np.uint64)  # a view for one-word codes
    out = np.empty((1 << b) + 1, dtype=np.int32 if m < 2**31 else np.int64)
    for start in range(0, 1 << b, DIRECTORY_CHUNK):
        values = np.arange(start, min(start + DIRECTORY_CHUNK, 1 << b), dtype=np.uint64) << np.uint64(shift)
        out[start:start + len(values)] = np.searchsorted(first, values)
    out[-1] = m
    return out, np.uint64(shift)
