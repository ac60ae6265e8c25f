"""Property-based: any codes, any mix of adds and removes, any k and radius, any kernel and
strategy, before and after a save/load, the index answers exactly what the brute force answers."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnnh.index import HammingIndex
from dnnh.index.search import KERNELS as _ALL_KERNELS
from dnnh.codes import pack_bits
from dnnh.testing.reference import assert_same_range, knn

KERNELS = [e for e in _ALL_KERNELS if e != "auto"]

SETTINGS = settings(max_examples=int(os.environ.get("DNNH_HYPOTHESIS_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def code_sets(draw):
    """Codes drawn from a small pool, so duplicates and ties are the rule, not the exception."""
    nbits = draw(st.sampled_from([1, 5, 12, 24, 32, 48, 64, 65, 100, 128]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2, (draw(st.integers(1, 12)), nbits), dtype=np.uint8)
    flip = draw(st.sampled_from([0.0, 0.02, 0.5]))

    def sample(n: int) -> np.ndarray:
        bits = pool[rng.integers(0, len(pool), n)]
        return (bits ^ (rng.random((n, nbits)) < flip)).astype(np.uint8)

    return nbits, sample


@given(data=code_sets(), ops=st.lists(st.tuples(st.sampled_from(["add", "add_ids", "remove"]), st.integers(0, 40)),
                                      min_size=1, max_size=5),
       k=st.integers(1, 80), radius=st.integers(0, 6), kernel=st.sampled_from(KERNELS),
       strategy=st.sampled_from(["auto", "scan", "probe", "mih", "prefix"]), reload=st.sampled_from([None, "read", "mmap"]))
@SETTINGS
def test_matches_brute_force(data, ops, k, radius, kernel, strategy, reload, range_reference) -> None:
    nbits, sample = data
    index = HammingIndex(nbits, kernel=kernel, num_threads=2)
    bits = np.zeros((0, nbits), np.uint8)
    ids = np.zeros(0, np.int64)
    next_id = 0
    for op, n in ops:  # a reference model of the contents: (bits, ids) in insertion order
        if op == "remove":
            gone = ids[::max(1, n)][:3] if len(ids) else np.array([5])
            assert index.remove(gone) == int(np.isin(ids, gone).sum())
            bits, ids = bits[~np.isin(ids, gone)], ids[~np.isin(ids, gone)]
            continue
        new = sample(n)
        new_ids = np.arange(next_id, next_id + n) if op == "add" else np.arange(n) * 7 + 1000
        index.add(pack_bits(new), ids=None if op == "add" else new_ids)
        next_id = max(next_id + (n if op == "add" else 0), int(new_ids.max()) + 1 if n else 0)
        bits, ids = np.concatenate([bits, new]), np.concatenate([ids, new_ids])
    if reload:
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "ix.dhi")
            index = HammingIndex.load(Path(tmp) / "ix.dhi", mmap=reload == "mmap", kernel=kernel)
    assert index.ntotal == len(bits)
    q = np.concatenate([sample(3), bits[:2]])
    d, i = index.search(pack_bits(q), k, strategy="auto" if strategy == "auto" else "scan")
    wd, wi = knn(bits, ids, q, k)
    np.testing.assert_array_equal(d, wd)
    np.testing.assert_array_equal(i, wi)
    if strategy == "probe" and sum(math.comb(nbits, r) for r in range(radius + 1)) > 100_000:
        strategy = "mih"  # a forced probe of a huge ball is refused (tested elsewhere)
    # (a forced prefix ball is over a few bits on sets this small: never refused)
    assert_same_range(index.range_search(pack_bits(q), radius, strategy=strategy), range_reference(bits, ids, q, radius))


@given(data=code_sets(), k=st.integers(1, 30))
@SETTINGS
def test_kernels_agree_with_each_other(data, k) -> None:
    nbits, sample = data
    codes = pack_bits(sample(120))
    q = pack_bits(sample(6))
    answers = []
    for kernel in KERNELS:
        index = HammingIndex(nbits, kernel=kernel)
        index.add(codes)
        answers.append((index.search(q, k), index.range_search(q, 2)))
    for (d, i), (lims, rd, ri) in answers[1:]:
        (d0, i0), (lims0, rd0, ri0) = answers[0]
        for a, b in ((d, d0), (i, i0), (lims, lims0), (rd, rd0), (ri, ri0)):
            np.testing.assert_array_equal(a, b)


@given(nbits=st.sampled_from([7, 32, 48, 64, 65, 128, 150]), seed=st.integers(0, 2**32 - 1),
       n=st.integers(500, 3_000), pool=st.integers(1, 2_000), flip=st.sampled_from([0.0, 0.01, 0.2, 0.5]),
       k=st.integers(1, 400), radius=st.integers(0, 20), kernel=st.sampled_from(["numba", "numpy"]))
@settings(max_examples=int(os.environ.get("DNNH_HYPOTHESIS_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_large_sets_match_brute_force(nbits, seed, n, pool, flip, k, radius, kernel, range_reference) -> None:
    """Sets of thousands of codes, so numba's vector scan runs whole chunks, prefix groups and tails."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, (pool, nbits), dtype=np.uint8)
    bits = (base[rng.integers(0, pool, n)] ^ (rng.random((n, nbits)) < flip)).astype(np.uint8)
    ids = rng.permutation(n) * 3
    index = HammingIndex(nbits, kernel=kernel, num_threads=2)
    index.add(pack_bits(bits), ids=ids)
    q = np.concatenate([bits[rng.integers(0, n, 3)], rng.integers(0, 2, (2, nbits), dtype=np.uint8)])
    wd, wi = knn(bits, ids, q, k)
    for strategy in ("scan", "auto"):
        d, i = index.search(pack_bits(q), k, strategy=strategy)
        np.testing.assert_array_equal(d, wd)
        np.testing.assert_array_equal(i, wi)
    radius = min(radius, nbits)
    assert_same_range(index.range_search(pack_bits(q), radius, strategy="scan"), range_reference(bits, ids, q, radius))
