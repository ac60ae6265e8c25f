"""Chunking changes memory, never results; memory stays bounded as queries grow."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from dnnh.codes import pack_bits
from dnnh.metrics import mean_average_precision, precision_within_radius, retrieval_report
from dnnh.metrics import _scan
from dnnh.metrics._inputs import to_words


def _case(seed, n_query, n_db, nbits, multilabel=False):
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2, (50, nbits))
    qb = pool[rng.integers(0, 50, n_query)]
    db = pool[rng.integers(0, 50, n_db)]
    if multilabel:
        return qb, db, (rng.random((n_query, 5)) < 0.3).astype(int), (rng.random((n_db, 5)) < 0.3).astype(int)
    return qb, db, rng.integers(0, 6, n_query), rng.integers(0, 5, n_db)


@pytest.mark.parametrize("multilabel", [False, True])
def test_results_do_not_depend_on_chunk_size_or_budget(multilabel):
    qb, db, ql, dl = _case(1, 37, 701, 24, multilabel)
    reference = retrieval_report(qb, db, ql, dl, topk=50, radius=3, precision_at=(1, 7, 700), chunk_size=37)
    for kw in (dict(chunk_size=1), dict(chunk_size=5), dict(chunk_size=1000), dict(max_memory=1), dict()):
        rep = retrieval_report(qb, db, ql, dl, topk=50, radius=3, precision_at=(1, 7, 700), **kw)
        assert rep == reference, kw
        assert mean_average_precision(qb, db, ql, dl, topk=50, **kw) == reference.map_at_k
        chunk = {k: v for k, v in kw.items() if k == "chunk_size"}
        assert precision_within_radius(qb, db, ql, dl, radius=3, **chunk) == reference.precision_radius


def test_database_blocks_do_not_change_results(monkeypatch):
    # blocks of 256 items (the minimum) cut a 701-item database into 3 ragged blocks
    qb, db, ql, dl = _case(2, 9, 701, 40)
    reference = retrieval_report(qb, db, ql, dl, topk=100)
    monkeypatch.setattr(_scan, "_BLOCK_CELLS", 1)
    assert retrieval_report(qb, db, ql, dl, topk=100) == reference


@pytest.mark.parametrize("ties", ["index", "optimistic", "pessimistic"])
def test_wide_keys_give_the_same_ranking(monkeypatch, ties):
    # uint64 keys are only chosen past ~16M items at 48 bits; force them on a small case
    qb, db, ql, dl = _case(3, 11, 300, 48)
    reference = retrieval_report(qb, db, ql, dl, topk=30, ties=ties)
    monkeypatch.setattr(_scan, "key_dtype", lambda nbits, index_bits: np.uint64)
    assert retrieval_report(qb, db, ql, dl, topk=30, ties=ties) == reference


def test_key_width_choice():
    assert _scan.key_dtype(48, 20) == np.uint32  # 6 + 1 + 20 bits
    assert _scan.key_dtype(48, 25) == np.uint32  # 6 + 1 + 25 = 32 bits exactly
    assert _scan.key_dtype(64, 25) == np.uint64  # 7 + 1 + 25 = 33 bits


def test_chunk_rows_follow_the_budget():
    # 1,000,000 items, 4-byte keys: (64 MiB - 17 B x 1e6) // 4e6 = (67,108,864 - 17,000,000) // 4,000,000 = 12
    assert _scan.rows_per_chunk(1_000_000, 4, 64 * 2**20, None) == 12
    assert _scan.rows_per_chunk(1_000_000, 4, 1, None) == 1  # never fewer than one query
    assert _scan.rows_per_chunk(1_000_000, 4, 1, 7) == 7  # an explicit chunk size wins


def test_packing_matches_the_codes_helper():
    bits = np.random.default_rng(4).integers(0, 2, (33, 77))
    words = to_words(bits, "bits")
    packed = pack_bits(bits)  # 10 bytes a code, padded here to two 8-byte words
    assert words.shape == (33, 2)
    assert np.array_equal(words.view(np.uint8)[:, :10], packed)
    assert not words.view(np.uint8)[:, 10:].any()


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_not_the_query_count():
    rng = np.random.default_rng(5)
    n_db, nbits, budget = 100_000, 48, 4 * 2**20
    db = rng.integers(0, 2, (n_db, nbits), dtype=np.uint8)
    dl = rng.integers(0, 10, n_db)
    few, many = rng.integers(0, 2, (10, nbits), dtype=np.uint8), rng.integers(0, 2, (200, nbits), dtype=np.uint8)
    peak_few = _peak(lambda: retrieval_report(few, db, dl[:10], dl, topk=500, max_memory=budget))
    peak_many = _peak(lambda: retrieval_report(many, db, dl[:200], dl, topk=500, max_memory=budget))
    dense = 200 * n_db * 8  # one float64 distance matrix: 160 MB
    # what grows with the queries are per-query results: a dozen (n_query, nbits + 1) arrays of
    # 8-byte counts and ratios for the PR curve, at most 16 x 49 x 8 B a query (a row of keys
    # kept a query would instead be 100,000 x 4 B)
    assert peak_many - peak_few < 190 * 16 * 49 * 8
    # the budget bounds the work arrays; inputs are copied once into packed words (~1.6 MB here)
    assert peak_many < budget + 4 * 2**20
    assert peak_many < dense / 15
