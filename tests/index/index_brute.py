"""Reference answers for the index tests, written without any of the index's code.

A full distance matrix over unpacked bits and a stable sort: the definition of the ranking
(distance, then insertion order), slow and obviously right.
"""

from __future__ import annotations

import numpy as np

from dnnh.codes import pack_bits

ENGINES = ["numpy", "faiss", "numba"]


def distances(db_bits: np.ndarray, q_bits: np.ndarray) -> np.ndarray:
    return (q_bits[:, None, :] != db_bits[None, :, :]).sum(axis=2)


def knn(db_bits: np.ndarray, ids: np.ndarray, q_bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    nq = len(q_bits)
    out_d = np.full((nq, k), -1, dtype=np.int64)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    if len(db_bits) == 0:
        return out_d, out_i
    dist = distances(db_bits, q_bits)
    for row in range(nq):
        order = np.argsort(dist[row], kind="stable")[:k]
        out_d[row, : len(order)] = dist[row, order]
        out_i[row, : len(order)] = ids[order]
    return out_d, out_i


def range_(db_bits: np.ndarray, ids: np.ndarray, q_bits: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    dist = distances(db_bits, q_bits) if len(db_bits) else np.zeros((len(q_bits), 0), dtype=np.int64)
    for row in range(len(q_bits)):
        within = np.flatnonzero(dist[row] <= radius)
        order = within[np.argsort(dist[row, within], kind="stable")]
        out.append((dist[row, order], ids[order]))
    return out


def split_range(lims: np.ndarray, d: np.ndarray, i: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(d[lims[r]:lims[r + 1]], i[lims[r]:lims[r + 1]]) for r in range(len(lims) - 1)]


def assert_same_range(got: tuple[np.ndarray, np.ndarray, np.ndarray], want: list) -> None:
    lims, d, i = got
    assert lims.dtype == np.int64 and d.dtype == np.int32 and i.dtype == np.int64
    assert len(lims) == len(want) + 1
    for row, ((gd, gi), (wd, wi)) in enumerate(zip(split_range(lims, d, i), want)):
        np.testing.assert_array_equal(gd, wd, err_msg=f"distances of query {row}")
        np.testing.assert_array_equal(gi, wi, err_msg=f"ids of query {row}")


def random_bits(rng: np.random.Generator, n: int, nbits: int) -> np.ndarray:
    return rng.integers(0, 2, (n, nbits), dtype=np.uint8)


def clustered_bits(rng: np.random.Generator, n: int, nbits: int, centres: int = 6, flip: float = 0.03) -> np.ndarray:
    """Learned-code-like: a few centres, most items exact copies, some a bit or two away."""
    c = random_bits(rng, centres, nbits)
    bits = c[rng.integers(0, centres, n)]
    noise = rng.random((n, nbits)) < flip
    return (bits ^ noise).astype(np.uint8)


def packed(bits: np.ndarray) -> np.ndarray:
    return pack_bits(bits)
