"""From candidate codes to ranked items, vectorised in numpy (the kernel without numba).

A strategy (scan, probe, multi-index hashing, FAISS) reports candidate triples (query, code,
distance). For k-NN the candidates of a query must include every distinct code at distance <= the
k-th item's distance; extra farther codes are harmless. Expansion replaces each code by its bucket
of items and ranks items by (distance, position), the index's tie rule.
"""

from __future__ import annotations

import numpy as np

from dnnh.index.groups import Groups


def _segment_starts(sorted_q: np.ndarray, nq: int) -> np.ndarray:
    return np.searchsorted(sorted_q, np.arange(nq))


def _expand_members(groups: Groups, codes: np.ndarray, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first ``take[i]`` members of each code's bucket, and the candidate row of each."""
    total = int(take.sum())
    rows = np.repeat(np.arange(len(codes)), take)
    within = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    pos = groups.members[groups.offsets[codes][rows] + within]
    return pos.astype(np.int64, copy=False), rows


def expand_knn(groups: Groups, q: np.ndarray, c: np.ndarray, d: np.ndarray, nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest items per query as (distances int32, positions int64), -1 padded."""
    out_d = np.full((nq, k), -1, dtype=np.int32)
    out_p = np.full((nq, k), -1, dtype=np.int64)
    if len(q) == 0:
        return out_d, out_p
    order = np.lexsort((d, q))
    q, c, d = q[order], c[order], d[order]
    sizes = groups.sizes[c]
    cum = np.cumsum(sizes)
    starts = _segment_starts(q, nq)
    cum_q = cum - (cum[starts[q]] - sizes[starts[q]])  # items up to and including this code, per query
    reached = np.flatnonzero(cum_q >= k)
    dstar = np.full(nq, np.iinfo(np.int64).max, dtype=np.int64)
    first_q, first_at = np.unique(q[reached], return_index=True)
    dstar[first_q] = d[reached[first_at]]
    keep = d <= dstar[q]
    q, c, d, sizes = q[keep], c[keep], d[keep], sizes[keep]
    pos, rows = _expand_members(groups, c, np.minimum(sizes, k))
    iq, idist = q[rows], d[rows]
    order = np.lexsort((pos, idist, iq))
    iq, idist, pos = iq[order], idist[order], pos[order]
    rank = np.arange(len(iq)) - _segment_starts(iq, nq)[iq]
    sel = rank < k
    out_d[iq[sel], rank[sel]] = idist[sel]
    out_p[iq[sel], rank[sel]] = pos[sel]
    return out_d, out_p


def expand_range(groups: Groups, q: np.ndarray, c: np.ndarray, d: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every item of the candidate codes: (lims, distances int32, positions int64).

    Ordered by (query, distance, code, position) as the numba kernel gives them: only the
    candidate codes are sorted; each bucket is already in position order.
    """
    order = np.lexsort((c, d, q))
    q, c, d = q[order], c[order], d[order]
    pos, rows = _expand_members(groups, c, groups.sizes[c])
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(q, weights=groups.sizes[c], minlength=nq).astype(np.int64), out=lims[1:])
    return lims, d[rows].astype(np.int32), pos
