"""HammingIndex answers exactly what a brute-force scan answers: ids, distances and tie order."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.index import HammingIndex
from dnnh.index.search import KERNELS as _ALL_KERNELS
from dnnh.codes import pack_bits
from support.problems import clustered_bits, random_bits
from dnnh.testing.reference import assert_same_range, knn

KERNELS = [e for e in _ALL_KERNELS if e != "auto"]

NBITS = [12, 24, 32, 48, 64, 128]


def _index(bits: np.ndarray, kernel: str, ids: np.ndarray | None = None) -> HammingIndex:
    index = HammingIndex(bits.shape[1], kernel=kernel, num_threads=2)
    index.add(pack_bits(bits), ids=ids)
    return index


def _check_knn(index: HammingIndex, db: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, **kw) -> None:
    d, i = index.search(pack_bits(q), k, **kw)
    assert d.dtype == np.int32 and i.dtype == np.int64 and d.shape == i.shape == (len(q), k)
    wd, wi = knn(db, ids, q, k)
    np.testing.assert_array_equal(d, wd)
    np.testing.assert_array_equal(i, wi)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("nbits", NBITS)
@pytest.mark.parametrize("data", ["random", "clustered"])
def test_knn_and_range_match_brute_force(kernel: str, nbits: int, data: str, range_reference) -> None:
    rng = np.random.default_rng(nbits)
    make = random_bits if data == "random" else clustered_bits
    db = make(rng, 300, nbits)
    q = np.concatenate([make(rng, 12, nbits), db[:4]])  # some queries sit exactly on stored codes
    ids = rng.permutation(10_000)[:300]
    index = _index(db, kernel, ids)
    for k in (1, 10, 120):
        for strategy in ("auto", "scan"):
            _check_knn(index, db, ids, q, k, strategy=strategy)
    for radius in (0, 1, 2, nbits // 4):
        for strategy in ("auto", "scan", "probe", "mih", "prefix"):
            if strategy in ("probe", "prefix") and radius > 3:
                continue
            assert_same_range(index.range_search(pack_bits(q), radius, strategy=strategy), range_reference(db, ids, q, radius))


@pytest.mark.parametrize("kernel", KERNELS)
def test_heavy_duplicates_ties_follow_insertion_order(kernel: str, range_reference) -> None:
    rng = np.random.default_rng(1)
    db = clustered_bits(rng, 2_000, 48, centres=3, flip=0.005)
    ids = np.arange(2_000)[::-1].copy()  # ids unrelated to insertion order: ties must follow positions
    index = _index(db, kernel, ids)
    assert index.ndistinct < 200
    q = np.concatenate([db[:5], clustered_bits(rng, 5, 48, centres=3, flip=0.02)])
    for k in (1, 50, 700, 2_500):
        _check_knn(index, db, ids, q, k)
    for radius in (0, 1, 3):
        assert_same_range(index.range_search(pack_bits(q), radius), range_reference(db, ids, q, radius))


@pytest.mark.parametrize("kernel", KERNELS)
def test_k_larger_than_ntotal_pads_with_minus_one(kernel: str) -> None:
    rng = np.random.default_rng(2)
    db = random_bits(rng, 7, 24)
    index = _index(db, kernel)
    d, i = index.search(pack_bits(db[:2]), 10)
    assert (i[:, 7:] == -1).all() and (d[:, 7:] == -1).all()
    _check_knn(index, db, np.arange(7), db[:2], 10)


@pytest.mark.parametrize("kernel", KERNELS)
def test_empty_index_and_no_queries(kernel: str) -> None:
    index = HammingIndex(32, kernel=kernel)
    q = pack_bits(random_bits(np.random.default_rng(3), 3, 32))
    d, i = index.search(q, 4)
    assert d.shape == (3, 4) and (d == -1).all() and (i == -1).all()
    lims, rd, ri = index.range_search(q, 5)
    assert lims.tolist() == [0, 0, 0, 0] and len(rd) == len(ri) == 0
    index.add(q)
    d, i = index.search(q[:0], 4)
    assert d.shape == i.shape == (0, 4)
    lims, _, _ = index.range_search(q[:0], 1)
    assert lims.tolist() == [0]


@pytest.mark.parametrize("kernel", KERNELS)
def test_remove_then_search_and_add_again(kernel: str, range_reference) -> None:
    rng = np.random.default_rng(4)
    db = clustered_bits(rng, 400, 40, centres=5)
    index = _index(db, kernel)
    gone = rng.choice(400, 150, replace=False)
    assert index.remove(gone) == 150
    assert index.remove(gone) == 0
    keep = np.setdiff1d(np.arange(400), gone)
    q = clustered_bits(rng, 8, 40, centres=5)
    _check_knn(index, db[keep], keep, q, 30)
    assert_same_range(index.range_search(pack_bits(q), 2), range_reference(db[keep], keep, q, 2))
    extra = random_bits(rng, 20, 40)
    index.add(pack_bits(extra))  # default ids continue after the largest id held: 400, 401, ...
    all_bits = np.concatenate([db[keep], extra])
    all_ids = np.concatenate([keep, np.arange(400, 420)])
    np.testing.assert_array_equal(index.ids, all_ids)
    _check_knn(index, all_bits, all_ids, q, 60)
    index.remove(int(all_ids[0]))
    _check_knn(index, all_bits[1:], all_ids[1:], q, 60)
    index.reset()
    assert index.ntotal == 0


def test_default_ids_are_insertion_order_across_adds() -> None:
    rng = np.random.default_rng(5)
    a, b = random_bits(rng, 5, 16), random_bits(rng, 4, 16)
    index = HammingIndex(16)
    index.add(pack_bits(a))
    index.add(pack_bits(b))
    np.testing.assert_array_equal(index.ids, np.arange(9))
    assert index.memory_usage()["ids"] == 0  # identity ids cost nothing
    np.testing.assert_array_equal(index.codes(), pack_bits(np.concatenate([a, b])))
    index.add(pack_bits(a[:1]), ids=np.array([2**40]))
    index.add(pack_bits(a[:1]))
    assert index.ids[-2:].tolist() == [2**40, 2**40 + 1]


@pytest.mark.parametrize("kernel", ["numpy", "numba"])
def test_int64_positions_path(kernel: str, monkeypatch: pytest.MonkeyPatch, range_reference) -> None:
    """Indexes past 2**31 items store positions as int64; force that layout on a small one."""
    import dnnh.index.groups as groups

    monkeypatch.setattr(groups, "INT32_LIMIT", 10)
    rng = np.random.default_rng(6)
    db = clustered_bits(rng, 60, 20, centres=4)
    index = _index(db, kernel)
    assert index.memory_usage()["members"] == 60 * 8
    q = db[:6]
    _check_knn(index, db, np.arange(60), q, 25)
    assert_same_range(index.range_search(pack_bits(q), 2, strategy="mih"), range_reference(db, np.arange(60), q, 2))
    assert_same_range(index.range_search(pack_bits(q), 2, strategy="probe"), range_reference(db, np.arange(60), q, 2))


def test_strategy_choice_follows_cost() -> None:
    rng = np.random.default_rng(7)
    few = _index(clustered_bits(rng, 500, 48, centres=4, flip=0.01), "numpy")
    assert few.plan_range(2).strategy == "scan"  # a handful of distinct codes: scanning them is cheapest
    many = _index(random_bits(rng, 20_000, 48), "numpy")
    plan = many.plan_range(2)
    # random codes: MIH's tables (16 bytes a code a substring) are too large next to the items,
    # and the prefix ball of the directory, which needs none, beats the scan
    assert plan.strategy == "prefix" and plan.costs["prefix"] < plan.costs["scan"] and plan.costs["mih"] == np.inf
    repeated = _index(np.repeat(random_bits(rng, 300, 48), 40, axis=0), "numpy")
    assert repeated.plan_range(2).costs["mih"] < np.inf  # few distinct codes: MIH's tables are small, it competes
    assert many.plan_range(0).strategy == "probe"
    assert many.plan_range(40).strategy == "scan"


@pytest.mark.parametrize("kernel", KERNELS)
def test_many_codes_tied_at_the_kth_distance(kernel: str) -> None:
    """Every 16-bit code once: 697 codes lie within distance 3 and the 200th item is at 3, so the
    candidates kept at the threshold outgrow a scan's buffer and the query is redone alone."""
    rng = np.random.default_rng(8)
    every = ((np.arange(2**16)[:, None] >> np.arange(16)) & 1).astype(np.uint8)[rng.permutation(2**16)]
    index = _index(every, kernel)
    q = random_bits(rng, 3, 16)
    _check_knn(index, every, np.arange(2**16), q, 200, strategy="scan")
    _check_knn(index, every, np.arange(2**16), q, 3_000)


@pytest.mark.parametrize("data", ["random", "clustered"])
def test_numpy_row_by_row_scan(data: str, monkeypatch: pytest.MonkeyPatch, range_reference) -> None:
    """numpy scans large code sets one query at a time in reused buffers; force that on a small one."""
    import dnnh.index.scan as scan

    monkeypatch.setattr(scan, "ROW_SCAN_FROM", 1)
    rng = np.random.default_rng(9)
    for nbits in (24, 100):
        db = (random_bits if data == "random" else clustered_bits)(rng, 400, nbits)
        q = np.concatenate([db[:3], random_bits(rng, 3, nbits)])
        index = _index(db, "numpy")
        _check_knn(index, db, np.arange(400), q, 50, strategy="scan")
        assert_same_range(index.range_search(pack_bits(q), nbits // 3, strategy="scan"), range_reference(db, np.arange(400), q, nbits // 3))
