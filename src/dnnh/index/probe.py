"""Probing the Hamming ball: look up every code within a radius instead of scanning.

A 48-bit code has 1,177 codes within radius 2. When the index holds many more distinct codes than
that, looking each one up in a table costs less than computing a distance to every stored code.
Lookups go through the sorted distinct codes themselves: with numba, a directory of where each
value of the codes' top bits starts (:func:`dnnh.index.layout.directory`, 1-2 bytes a distinct
code: a bucket of a few codes, then bisection); in numpy a sorted key array for ``searchsorted``
(for one-word codes the codes themselves; longer codes keep 64-bit hashes and their order).

The same directory gives the prefix-ball radius search (:func:`prefix_candidates`): every code
within r of a query has its top bits within r of the query's, so probing the ball of the
directory's b-bit prefixes (ball(b, r) buckets, far fewer than the full code's ball) and checking
the codes of those buckets finds them all, with no table beyond the directory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnnh.index.layout import flip_masks, mix_hash

PROBE_BLOCK = 1 << 20  # probes per numpy block, bounds temporary memory


@dataclass
class SortedKeys:
    """Sorted lookup keys: the codes themselves (one word) or their 64-bit hashes and the order."""
    keys: np.ndarray
    perm: np.ndarray | None

    @classmethod
    def build(cls, codes: np.ndarray) -> "SortedKeys":
        if codes.shape[1] == 1:
            return cls(codes[:, 0], None)
        h = mix_hash(codes)
        perm = np.argsort(h, kind="stable")
        return cls(h[perm], perm)

    def nbytes(self) -> int:
        return 0 if self.perm is None else int(self.keys.nbytes + self.perm.nbytes)

    def lookup(self, codes: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """Index of each probe among ``codes``, or -1."""
        m = len(self.keys)
        out = np.full(len(probes), -1, dtype=np.int64)
        if m == 0:
            return out
        target = probes[:, 0] if self.perm is None else mix_hash(probes)
        lo = np.searchsorted(self.keys, target, side="left")
        if self.perm is None:
            hit = lo < m
            hit[hit] = self.keys[lo[hit]] == target[hit]
            out[hit] = lo[hit]
            return out
        hi = np.searchsorted(self.keys, target, side="right")
        for step in range(int((hi - lo).max(initial=0))):  # hash collisions: check each equal key
            at = np.flatnonzero((lo + step < hi) & (out < 0))
            cand = self.perm[lo[at] + step]
            same = (codes[cand] == probes[at]).all(axis=1)
            out[at[same]] = cand[same]
        return out


def prefix_candidates(starts: np.ndarray, shift: np.uint64, masks: np.ndarray, codes: np.ndarray,
                      queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, code, distance) for every distinct code within ``radius``, through the directory's prefix ball."""
    flips = masks[:, 0]
    per_block = max(1, PROBE_BLOCK // max(len(flips), 1))
    qs, cs, ds = [], [], []
    for start in range(0, len(queries), per_block):
        block = queries[start:start + per_block]
        bucket = ((block[:, 0] >> shift)[:, None] ^ flips[None, :]).reshape(-1).astype(np.int64)
        lo, hi = starts[bucket].astype(np.int64), starts[bucket + 1].astype(np.int64)
        take = hi - lo
        rows = np.repeat(np.arange(len(bucket)), take)
        c = np.repeat(lo, take) + np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
        q = start + rows // len(flips)
        d = np.zeros(len(c), np.int64)
        for w in range(codes.shape[1]):
            d += np.bitwise_count(queries[q, w] ^ codes[c, w])
        keep = d <= radius
        qs.append(q[keep])
        cs.append(c[keep])
        ds.append(d[keep])
    if not qs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(qs), np.concatenate(cs), np.concatenate(ds)


def probe_candidates(table: SortedKeys, codes: np.ndarray, queries: np.ndarray, radius: int,
                     nbits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, code, distance) for every stored distinct code within ``radius``, by probing."""
    masks, lims = flip_masks(nbits, radius)
    level = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
    per_block = max(1, PROBE_BLOCK // len(masks))
    qs, cs, ds = [], [], []
    for start in range(0, len(queries), per_block):
        block = queries[start:start + per_block]
        probes = (block[:, None, :] ^ masks[None, :, :]).reshape(-1, codes.shape[1])
        found = table.lookup(codes, probes)
        hit = np.flatnonzero(found >= 0)
        qs.append(start + hit // len(masks))
        cs.append(found[hit])
        ds.append(level[hit % len(masks)])
    if not qs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(qs), np.concatenate(cs), np.concatenate(ds)
