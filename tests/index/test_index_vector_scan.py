"""The vector scan (numba intrinsics: 8-code vector popcounts, 32-code chunks, prefix bounds over
64-code blocks) answers exactly what the brute force answers, on sets large enough to use it.

The other index tests mostly hold a few hundred codes, fewer than one prefix group (512 codes), so
their scans run the scalar tails; here every path of the vector scan runs: whole chunks and a
tail, pruned and visited blocks, one-word, two-word and longer codes, k-NN rows that overflow and
rescan alone, radius rows that fill and resume alone, and the same kernels compiled for CPUs
without AVX-512 (and without POPCNT) in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dnnh.codes import pack_bits
from dnnh.index import HammingIndex
from dnnh.index.groups import group
from dnnh.index.layout import prefix_bounds, to_words
from support.problems import clustered_bits, random_bits
from dnnh.testing.reference import assert_same_range, knn


def _data(kind: str, rng: np.random.Generator, n: int, nbits: int) -> np.ndarray:
    if kind == "random":
        return random_bits(rng, n, nbits)
    if kind == "clustered":  # many duplicates: buckets of several items, ties everywhere
        return clustered_bits(rng, n, nbits, centres=12, flip=0.02)
    pool = random_bits(rng, 400, nbits)  # exactly repeated codes, far apart: prefix bounds prune
    return pool[rng.integers(0, len(pool), n)]


@pytest.mark.parametrize("nbits", [16, 48, 64, 100, 128, 192])
@pytest.mark.parametrize("kind", ["random", "clustered", "repeated"])
def test_vector_scan_matches_brute_force(nbits: int, kind: str, range_reference) -> None:
    rng = np.random.default_rng(nbits * 7 + len(kind))
    n = 2_000 + 37  # not a multiple of 32, 64 or 512: every scan ends in a tail
    db = _data(kind, rng, n, nbits)
    q = np.concatenate([_data(kind, rng, 6, nbits), db[[0, 5, n - 1]], db[:1] ^ 1])
    ids = (2**40 + rng.permutation(n)) if nbits == 100 else rng.permutation(n)  # int64 and int32 ids
    index = HammingIndex(nbits, kernel="numba", num_threads=2)
    index.add(pack_bits(db), ids=ids)
    packed = pack_bits(q)
    for k in (1, 37, 300):
        want_d, want_i = knn(db, ids, q, k)
        for strategy in ("scan", "auto"):
            d, i = index.search(packed, k, strategy=strategy)
            np.testing.assert_array_equal(d, want_d, err_msg=f"k={k} {strategy}")
            np.testing.assert_array_equal(i, want_i, err_msg=f"k={k} {strategy}")
    for radius in (0, 2, nbits // 4, nbits // 2):  # nbits // 2: about half the set, rows overflow
        want = range_reference(db, ids, q, radius)
        for strategy in ("scan", "auto"):
            assert_same_range(index.range_search(packed, radius, strategy=strategy), want)


def test_knn_rows_that_overflow_are_rescanned_alone() -> None:
    """Every 14-bit code 16 times: hundreds of codes tie at the k-th distance and overflow a row."""
    every = ((np.arange(2**14)[:, None] >> np.arange(14)) & 1).astype(np.uint8)
    db = np.tile(every, (2, 1))
    rng = np.random.default_rng(3)
    q = random_bits(rng, 4, 14)
    index = HammingIndex(14, kernel="numba")
    index.add(pack_bits(db))
    for k in (700, 5_000):
        d, i = index.search(pack_bits(q), k, strategy="scan")
        want_d, want_i = knn(db, np.arange(len(db)), q, k)
        np.testing.assert_array_equal(d, want_d)
        np.testing.assert_array_equal(i, want_i)


@pytest.mark.parametrize("nbits", [20, 64, 130])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_prefix_bounds_never_exceed_a_distance(nbits: int, kind: str) -> None:
    rng = np.random.default_rng(nbits)
    bits = _data(kind, rng, 3_000, nbits)
    g = group(to_words(pack_bits(bits), nbits), np.arange(len(bits)))
    values, masks = prefix_bounds(g.codes, 64)
    m, nw = g.codes.shape
    nb = -(-m // 64)
    assert values.shape == masks.shape == (nw, -(-nb // 8) * 8)
    assert not masks[:, nb:].any() and not values[:, nb:].any()  # padding: no bound
    queries = to_words(pack_bits(np.concatenate([_data(kind, rng, 20, nbits), bits[:3]])), nbits)
    dist = np.zeros((len(queries), m), np.int64)
    for w in range(nw):
        dist += np.bitwise_count(queries[:, None, w] ^ g.codes[None, :, w])
    bound = np.zeros((len(queries), nb), np.int64)
    for w in range(nw):
        bound += np.bitwise_count((queries[:, None, w] ^ values[None, w, :nb]) & masks[None, w, :nb])
    block_min = np.minimum.reduceat(dist, np.arange(0, m, 64), axis=1)
    assert (bound <= block_min).all()
    assert (bound > 0).any()  # the bounds do prune something on these sets


_PORTABLE = textwrap.dedent("""
    import numpy as np
    from dnnh.codes import pack_bits
    from dnnh.index import HammingIndex
    from support.problems import clustered_bits, random_bits

    rng = np.random.default_rng(5)
    for nbits, make in ((64, random_bits), (48, clustered_bits), (128, clustered_bits)):
        db = make(rng, 1_500, nbits)
        q = np.concatenate([make(rng, 5, nbits), db[:2]])
        dist = (q[:, None, :] != db[None, :, :]).sum(axis=2)
        index = HammingIndex(nbits, kernel="numba", num_threads=1)
        index.add(pack_bits(db))
        d, i = index.search(pack_bits(q), 40, strategy="scan")
        order = np.argsort(dist, axis=1, kind="stable")[:, :40]
        assert (i == order).all() and (d == np.take_along_axis(dist, order, 1)).all(), nbits
        lims, rd, ri = index.range_search(pack_bits(q), nbits // 4, strategy="scan")
        for row in range(len(q)):
            got = ri[lims[row]:lims[row + 1]]
            want = np.flatnonzero(dist[row] <= nbits // 4)
            assert sorted(got.tolist()) == want.tolist(), nbits
            assert (rd[lims[row]:lims[row + 1]] == dist[row, got]).all() and (np.diff(rd[lims[row]:lims[row + 1]]) >= 0).all()
    print("ok")
""")


def test_portable_codegen_without_avx512(tmp_path: Path) -> None:
    """The same kernels compiled for an AVX2 CPU (no vector popcount instruction: LLVM's nibble
    lookup) and for baseline x86-64 (no POPCNT at all) give the same answers. numba's target is
    per process, so each runs in a subprocess with its own cache."""
    import llvmlite.binding as llvm

    if llvm.get_process_triple().split("-")[0] not in ("x86_64", "amd64"):
        pytest.skip("the forced targets are x86-64 ones")
    targets = {"avx2": ("haswell", "+avx2,+avx,+popcnt,+sse4.2,+sse4.1,+ssse3,+bmi,+bmi2,+lzcnt,+fma,-avx512f"),
               "baseline": ("x86-64", "")}
    procs = {}
    for name, (cpu, features) in targets.items():
        tests = str(Path(__file__).resolve().parents[1])  # support.problems, as pytest's pythonpath has it
        env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features,
               "NUMBA_CACHE_DIR": str(tmp_path / name),
               "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
        procs[name] = subprocess.Popen([sys.executable, "-c", _PORTABLE], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.strip().endswith("ok"), f"{name}:\n{out}"


def test_prefix_block_agrees_and_the_plan_counts_skipped_blocks() -> None:
    from dnnh.index import cost, kernels

    assert cost.PREFIX_BLOCK == kernels.PREFIX_BLOCK  # cost.py keeps its own copy to stay numba-free
    rng = np.random.default_rng(11)
    index = HammingIndex(48, kernel="numba")
    index.add(pack_bits(clustered_bits(rng, 20_000, 48, centres=40, flip=0.01)))
    assert index.ndistinct > 1_000
    tables = index._prepared()
    assert 0.0 < tables.scan_share(2) < 0.75  # clustered codes: many blocks are far from any item
    assert tables.scan_share(48) == 1.0
    plan = index.plan_range(2)
    assert plan.costs["scan"] < index.ndistinct  # cheaper than reading every code
