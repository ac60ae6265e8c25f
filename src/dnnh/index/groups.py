"""Items grouped by identical code: the structure every search strategy walks.

Learned codes repeat: a database of a million items may hold a few thousand distinct codes. Each
distinct code is stored once (``codes``, sorted, so a one-word code table doubles as a sorted key
array), with the positions of its items (``members[offsets[i]:offsets[i + 1]]``, ascending). A
position is an item's rank in insertion order; the ranking "by distance, then insertion order" is
"by distance, then position", so a search scans distinct codes and expands their buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT32_LIMIT = 2**31 - 1  # positions beyond this need int64 members


def position_dtype(n: int) -> type:
    """int32 positions halve the memory of ``members`` for any index under 2**31 items."""
    return np.int32 if n <= INT32_LIMIT else np.int64


@dataclass
class Groups:
    codes: np.ndarray    # (m, nwords) uint64, distinct, lexicographic (word 0 most significant)
    offsets: np.ndarray  # (m + 1,) bucket bounds in members, same dtype as members
    members: np.ndarray  # (n,) int32/int64 positions, grouped by code, ascending within a group

    @property
    def ndistinct(self) -> int:
        return int(self.codes.shape[0])

    @property
    def ntotal(self) -> int:
        return int(self.members.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def empty(cls, nwords: int) -> "Groups":
        return cls(np.zeros((0, nwords), np.uint64), np.zeros(1, np.int32), np.zeros(0, np.int32))

    def item_codes(self) -> np.ndarray:
        """Codes of all items in position order, (n, nwords); O(n) memory, used when regrouping."""
        out = np.empty((self.ntotal, self.codes.shape[1]), dtype=np.uint64)
        out[self.members] = np.repeat(self.codes, self.sizes, axis=0)
        return out

    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.offsets.nbytes + self.members.nbytes)


def group(words: np.ndarray, positions: np.ndarray) -> Groups:
    """Group items (word-form codes with their positions) by identical code.

    A stable lexicographic sort with the position as the last key keeps each bucket in insertion order.
    """
    n, nw = words.shape
    if n == 0:
        return Groups.empty(nw)
    keys = [positions] + [words[:, w] for w in range(nw - 1, -1, -1)]
    order = np.lexsort(keys)
    sw = words[order]
    change = np.ones(n, dtype=bool)
    change[1:] = (sw[1:] != sw[:-1]).any(axis=1)
    starts = np.flatnonzero(change)
    offsets = np.append(starts, n).astype(position_dtype(n))
    members = positions[order].astype(position_dtype(n), copy=False)
    return Groups(np.ascontiguousarray(sw[starts]), offsets, members)


def merge(groups: Groups, new_words: list[np.ndarray]) -> Groups:
    """Regroup after adds: the new items take the next positions, after every existing one."""
    if not new_words:
        return groups
    added = np.concatenate(new_words)
    n0 = groups.ntotal
    words = np.concatenate([groups.item_codes(), added]) if n0 else added
    return group(words, np.arange(n0 + len(added), dtype=np.int64))


def drop(groups: Groups, alive: np.ndarray) -> Groups:
    """Remove the items whose position is not ``alive``; survivors keep their relative order.

    No re-sort is needed: positions are renumbered by rank, buckets only shrink, empty ones go.
    """
    new_pos = np.cumsum(alive) - 1
    keep = alive[groups.members]
    dtype = position_dtype(int(alive.sum()))
    members = new_pos[groups.members[keep]].astype(dtype, copy=False)
    kept_per_bucket = np.add.reduceat(keep.astype(np.int64), groups.offsets[:-1]) if groups.ndistinct else np.zeros(0, np.int64)
    nonempty = kept_per_bucket > 0
    offsets = np.concatenate([[0], np.cumsum(kept_per_bucket[nonempty])]).astype(dtype)
    return Groups(np.ascontiguousarray(groups.codes[nonempty]), offsets, members)
