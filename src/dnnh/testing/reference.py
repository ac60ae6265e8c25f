"""Answers computed from the definitions, sharing no code with :mod:`dnnh.metrics` or :mod:`dnnh.index`.

Distances by comparing bits one at a time, ranking by a full ``sorted`` on (distance, index),
relevance by comparing labels directly (docs/METHOD.md §9 states the conventions). Slow on
purpose: use them on a few hundred items.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def naive_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Hamming distance of two 0/1 sequences, bit by bit."""
    return sum(1 for x, y in zip(a, b) if x != y)


def naive_relevant(query_label, db_label) -> bool:
    """Same class id, or (multi-label 0/1 rows) at least one label in common."""
    if np.ndim(query_label) == 0:
        return int(query_label) == int(db_label)
    return any(int(x) == 1 and int(y) == 1 for x, y in zip(query_label, db_label))


def ranked_relevance(query_bits, query_label, db_bits, db_labels, ties: str = "index"
                     ) -> tuple[list[bool], list[int], list[bool]]:
    """Relevance flags in ranked order, then the distances and relevance of the database in index order.

    ``ties``: ``"index"`` (equal distances by database index), ``"optimistic"`` (relevant first)
    or ``"pessimistic"`` (relevant last).
    """
    dists = [naive_distance(query_bits, row) for row in db_bits]
    rels = [naive_relevant(query_label, lab) for lab in db_labels]
    if ties == "index":
        order = sorted(range(len(dists)), key=lambda j: (dists[j], j))
    elif ties == "optimistic":
        order = sorted(range(len(dists)), key=lambda j: (dists[j], not rels[j], j))
    else:
        order = sorted(range(len(dists)), key=lambda j: (dists[j], rels[j], j))
    return [rels[j] for j in order], dists, rels


def naive_ap(ranked: Sequence[bool], k: int, normalize: str = "retrieved") -> float | None:
    """AP@k of ranked relevance flags; None when its denominator is 0 (no relevant item counted).

    ``normalize``: divide by the relevant items in the top k (``"retrieved"``), by all relevant
    items (``"all_relevant"``) or by min(all relevant, k) (``"capped"``).
    """
    hits, total = 0, 0.0
    for pos in range(1, k + 1):
        if ranked[pos - 1]:
            hits += 1
            total += hits / pos
    n_rel = sum(ranked)
    den = {"retrieved": hits, "all_relevant": n_rel, "capped": min(n_rel, k)}[normalize]
    return None if den == 0 else total / den


def naive_mean(values: Sequence[float | None], empty: str = "zero") -> float:
    """Mean over queries; a query without an AP (None) scores 0 (``"zero"``) or is left out (``"skip"``)."""
    if empty == "zero":
        return sum(0.0 if v is None else v for v in values) / len(values)
    kept = [v for v in values if v is not None]
    return float("nan") if not kept else sum(kept) / len(kept)


def brute_force_map(query_bits, db_bits, query_labels, db_labels, topk: int | None = None, ties: str = "index",
                    normalize: str = "retrieved", empty: str = "zero") -> float:
    """MAP (MAP@topk) of 0/1 codes by the definitions above; defaults are the library's conventions."""
    k = len(db_bits) if topk is None else min(topk, len(db_bits))
    aps = [naive_ap(ranked_relevance(q, ql, db_bits, db_labels, ties)[0], k, normalize)
           for q, ql in zip(query_bits, query_labels)]
    return naive_mean(aps, empty)


def hamming_matrix(db_bits: np.ndarray, query_bits: np.ndarray) -> np.ndarray:
    """(n_query, n_db) Hamming distances over unpacked 0/1 bits, by comparing them."""
    return (query_bits[:, None, :] != db_bits[None, :, :]).sum(axis=2)


def knn(db_bits: np.ndarray, ids: np.ndarray, query_bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The index contract's k-NN: (distances, ids) by distance then insertion order, padded with -1."""
    nq = len(query_bits)
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    if len(db_bits) == 0:
        return out_d, out_i
    dist = hamming_matrix(db_bits, query_bits)
    for row in range(nq):
        order = np.argsort(dist[row], kind="stable")[:k]
        out_d[row, : len(order)] = dist[row, order]
        out_i[row, : len(order)] = ids[order]
    return out_d, out_i


def range_search(db_bits: np.ndarray, ids: np.ndarray, query_bits: np.ndarray, radius: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query, (distances, ids) of the items within ``radius`` (inclusive), by distance then insertion."""
    out = []
    dist = hamming_matrix(db_bits, query_bits) if len(db_bits) else np.zeros((len(query_bits), 0), dtype=np.int64)
    for row in range(len(query_bits)):
        within = np.flatnonzero(dist[row] <= radius)
        order = within[np.argsort(dist[row, within], kind="stable")]
        out.append((dist[row, order], ids[order]))
    return out


def split_range(lims: np.ndarray, d: np.ndarray, i: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """A range search's flat (lims, D, I) as one (distances, ids) pair per query."""
    return [(d[lims[r]:lims[r + 1]], i[lims[r]:lims[r + 1]]) for r in range(len(lims) - 1)]


def assert_same_range(got: tuple[np.ndarray, np.ndarray, np.ndarray],
                      want: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Assert an index's (lims, D, I) equals :func:`range_search`'s answer, dtypes included."""
    lims, d, i = got
    assert lims.dtype == np.int64 and d.dtype == np.int32 and i.dtype == np.int64
    assert len(lims) == len(want) + 1
    for row, ((gd, gi), (wd, wi)) in enumerate(zip(split_range(lims, d, i), want)):
        np.testing.assert_array_equal(gd, wd, err_msg=f"distances of query {row}")
        np.testing.assert_array_equal(gi, wi, err_msg=f"ids of query {row}")
