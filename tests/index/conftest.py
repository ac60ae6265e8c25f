"""Index tests: FAISS on one thread (its OpenMP workers spin and crawl on a shared 2-core machine),
and the brute-force radius search in the index's documented order."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.testing.reference import hamming_matrix, range_search


@pytest.fixture(autouse=True, scope="session")
def _faiss_one_thread():
    try:
        import faiss
    except ImportError:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _code_keys(bits: np.ndarray) -> list[np.ndarray]:
    """Each code's 64-bit words (bit b of word w is bit 64 w + b), word 0 first, from the 0/1 bits."""
    n, nbits = bits.shape
    keys = []
    for start in range(0, nbits, 64):
        chunk = bits[:, start:start + 64].astype(np.uint64)
        keys.append((chunk << np.arange(chunk.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64))
    return keys


def range_in_index_order(db_bits: np.ndarray, ids: np.ndarray, query_bits: np.ndarray, radius: int
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The brute-force radius search in the order ``HammingIndex.range_search`` documents.

    By distance, then code (its 64-bit words compared in turn, word 0 first, each as an unsigned
    integer), then insertion order: the index copies each distinct code's items as they are
    stored, so nothing but codes is ever sorted.
    """
    want = range_search(db_bits, ids, query_bits, radius)  # by distance, then insertion order
    if len(db_bits) == 0:
        return want
    dist = hamming_matrix(db_bits, query_bits)
    words = _code_keys(db_bits)
    out = []
    for row in range(len(query_bits)):
        within = np.flatnonzero(dist[row] <= radius)
        order = within[np.lexsort([within] + [w[within] for w in reversed(words)] + [dist[row, within]])]
        out.append((dist[row, order], ids[order]))
        # the same items and distances as the plain reference, only reordered within a distance
        np.testing.assert_array_equal(np.sort(out[-1][0]), want[row][0])
    return out


@pytest.fixture(scope="session")
def range_reference():
    """:func:`range_in_index_order`, for tests comparing radius searches exactly."""
    return range_in_index_order
