"""Items grouped by identical code: the structure every search strategy walks.

Learned codes repeat: a database of a million items may hold a few thousand distinct codes. Each
distinct code is stored once (``codes``, sorted, so a one-word code table doubles as a sorted key
array), with the positions of its items (``members[offsets[i]:offsets[i + 1]]``, ascending). A
position is an item's rank in insertion order; the ranking "by distance, then insertion order" is
"by distance, then position", so a search scans distinct codes and expands their buckets.

Where every code is held by one item (random codes, the worst case for grouping) the offsets are
0, 1, ..., m: they are then not stored (``bucket_offsets`` is empty), which saves 4 bytes an item;
the numba kernels read an empty offsets array as that identity, numpy code gets it from ``offsets``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

INT32_LIMIT = 2**31 - 1  # positions beyond this need int64 members


def position_dtype(n: int) -> type:
    """int32 positions halve the memory of ``members`` for any index under 2**31 items."""
    return np.int32 if n <= INT32_LIMIT else np.int64


@dataclass
class Groups:
    codes: np.ndarray           # (m, nwords) uint64, distinct, lexicographic (word 0 most significant)
    bucket_offsets: np.ndarray  # (m + 1,) bucket bounds in members (members' dtype), or (0,): one item a code
    members: np.ndarray         # (n,) int32/int64 positions, grouped by code, ascending within a group

    def __post_init__(self) -> None:
        if len(self.bucket_offsets) and self.ntotal == self.ndistinct:
            self.bucket_offsets = np.zeros(0, self.members.dtype)  # 0..m: implied, not stored

    @property
    def singletons(self) -> bool:
        """Whether every distinct code is held by exactly one item (offsets not stored)."""
        return len(self.bucket_offsets) == 0

    @property
    def offsets(self) -> np.ndarray:
        """Bucket bounds (m + 1,), made on the fly where they are implied (numpy paths only)."""
        if self.singletons:
            return np.arange(self.ndistinct + 1, dtype=self.members.dtype)
        return self.bucket_offsets

    @property
    def ndistinct(self) -> int:
        return int(self.codes.shape[0])

    @property
    def ntotal(self) -> int:
        return int(self.members.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        if self.singletons:
            return np.ones(self.ndistinct, dtype=self.members.dtype)
        return np.diff(self.bucket_offsets)

    @classmethod
    def empty(cls, nwords: int) -> "Groups":
        return cls(np.zeros((0, nwords), np.uint64), np.zeros(1, np.int32), np.zeros(0, np.int32))

    def item_codes(self) -> np.ndarray:
        """Codes of all items in position order, (n, nwords); O(n) memory, used when regrouping."""
        out = np.empty((self.ntotal, self.codes.shape[1]), dtype=np.uint64)
        out[self.members] = self.codes if self.singletons else np.repeat(self.codes, self.sizes, axis=0)
        return out

    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.bucket_offsets.nbytes + self.members.nbytes)


def group(words: np.ndarray, positions: np.ndarray | None = None) -> Groups:
    """Group items (word-form codes with their positions) by identical code.

    A stable lexicographic sort with the position as the last key keeps each bucket in insertion order.
    ``positions`` default to 0..n-1 (what every regrouping uses), which needs no position array at all.
    """
    n, nw = words.shape
    if n == 0:
        return Groups.empty(nw)
    dtype = position_dtype(n)
    if positions is None and nw == 1:  # positions 0..n-1: a stable sort keeps equal codes in position order
        order = np.argsort(words[:, 0], kind="stable")
    else:
        keys = [words[:, w] for w in range(nw - 1, -1, -1)]
        order = np.lexsort(keys if positions is None else [positions] + keys)
    members = (order if positions is None else positions[order]).astype(dtype)
    sw = words[order]
    del order  # peak memory: the sort's int64 order goes before the scratch arrays below
    change = np.ones(n, dtype=bool)
    if nw == 1:
        np.not_equal(sw[1:, 0], sw[:-1, 0], out=change[1:])
    else:
        change[1:] = (sw[1:] != sw[:-1]).any(axis=1)
    if change.all():  # every code distinct: the sorted words are the table, offsets are implied
        return Groups(sw, np.zeros(0, dtype), members)
    starts = np.flatnonzero(change).astype(dtype)
    del change
    offsets = np.append(starts, np.asarray(n, dtype))
    return Groups(np.ascontiguousarray(sw[starts]), offsets, members)


TRIM_FROM = 1 << 16  # items regrouped from which the scratch memory is handed back at once
_libc: object = None


def release_scratch() -> None:
    """Hand the memory a regrouping freed back to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    A regrouping's scratch arrays (the sort order, the sorted copy before compaction) are a few
    times the index's size. glibc keeps freed blocks under its (adaptive, up to 32 MB) mmap
    threshold in the process, so without this a 1M-code index left about 20 bytes a code of
    freed scratch resident, measured here (benchmarks/index_scale.py counts resident growth).
    """
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else False
        except OSError:
            _libc = False
    if _libc:
        _libc.malloc_trim(0)  # type: ignore[attr-defined]


def merge(groups: Groups, new_words: list[np.ndarray]) -> Groups:
    """Regroup after adds: the new items take the next positions, after every existing one."""
    if not new_words:
        return groups
    added = new_words[0] if len(new_words) == 1 else np.concatenate(new_words)
    n0 = groups.ntotal
    words = np.concatenate([groups.item_codes(), added]) if n0 else added
    del added
    return group(words)


def drop(groups: Groups, alive: np.ndarray) -> Groups:
    """Remove the items whose position is not ``alive``; survivors keep their relative order.

    No re-sort is needed: positions are renumbered by rank, buckets only shrink, empty ones go.
    """
    new_pos = np.cumsum(alive) - 1
    keep = alive[groups.members]
    dtype = position_dtype(int(alive.sum()))
    members = new_pos[groups.members[keep]].astype(dtype, copy=False)
    if groups.singletons:
        kept_per_bucket = keep.astype(np.int64)
    else:
        kept_per_bucket = np.add.reduceat(keep.astype(np.int64), groups.offsets[:-1]) if groups.ndistinct else np.zeros(0, np.int64)
    nonempty = kept_per_bucket > 0
    offsets = np.concatenate([[0], np.cumsum(kept_per_bucket[nonempty])]).astype(dtype)
    return Groups(np.ascontiguousarray(groups.codes[nonempty]), offsets, members)
