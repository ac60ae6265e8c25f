"""Memory near the codes: what an index holds by structure, and the file of an all-distinct set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnnh.codes import pack_bits
from dnnh.index import HammingIndex
from dnnh.index.fileformat import F_NO_OFFSETS, HEADER, describe
from support.problems import clustered_bits, random_bits
from dnnh.testing.reference import assert_same_range, knn


def _random_index(n: int, kernel: str = "numba") -> tuple[HammingIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    bits = random_bits(rng, n, 64)
    ids = rng.permutation(n * 3)[:n]  # ids unrelated to insertion order, below 2**31: stored as int32
    index = HammingIndex(64, kernel=kernel, num_threads=2)
    index.add(pack_bits(bits), ids=ids)
    return index, bits, ids


def test_random_codes_with_ids_stay_under_20_bytes_a_code_after_both_searches(range_reference) -> None:
    index, bits, ids = _random_index(20_000)
    q = np.concatenate([random_bits(np.random.default_rng(4), 30, 64), bits[:5]])
    d, i = index.search(pack_bits(q), 50)
    wd, wi = knn(bits, ids, q, 50)
    np.testing.assert_array_equal(d, wd)
    np.testing.assert_array_equal(i, wi)
    assert index.plan_range(2).costs["mih"] == np.inf  # MIH's tables would triple the index: auto leaves them out
    for strategy in ("auto", "prefix"):
        assert_same_range(index.range_search(pack_bits(q), 2, strategy=strategy), range_reference(bits, ids, q, 2))
    mem = index.memory_bytes()
    # every code distinct: no offsets; positions and ids int32; one sorted copy, no hash or MIH table
    assert mem["codes"] == 8 * 20_000 and mem["offsets"] == 0
    assert mem["members"] == 4 * 20_000 and mem["ids"] == 4 * 20_000
    assert mem["mih"] == 0 and mem["planes"] == 0 and mem["directory"] > 0
    assert mem["total"] == sum(v for key, v in mem.items() if key != "total")
    assert mem["total"] <= 20 * 20_000, mem
    assert index.memory_usage()["total"] == mem["total"]  # the older summary agrees


def test_learned_codes_keep_mih_while_its_tables_are_small(range_reference) -> None:
    """m far below n: MIH's tables stay below the items' own bytes, so auto may still use them."""
    rng = np.random.default_rng(5)
    bits = np.repeat(random_bits(rng, 400, 48), 30, axis=0)
    index = HammingIndex(48, num_threads=2)
    index.add(pack_bits(bits))
    assert index.plan_range(2).costs["mih"] < np.inf
    q = bits[:4] ^ (rng.random((4, 48)) < 0.02).astype(np.uint8)
    ids = np.arange(len(bits))
    for strategy in ("auto", "mih", "prefix", "probe", "scan"):
        assert_same_range(index.range_search(pack_bits(q), 2, strategy=strategy), range_reference(bits, ids, q, 2))


@pytest.mark.parametrize("mmap", [False, True])
def test_all_distinct_file_has_no_offsets_section(tmp_path: Path, mmap: bool, range_reference) -> None:
    index, bits, ids = _random_index(3_000)
    path = tmp_path / "random.dhi"
    index.save(path)
    size = HEADER.size + 3_000 * 8 + (3_000 * 4 + 32) + (3_000 * 4 + 32)  # codes, members, ids (64-byte aligned)
    assert path.stat().st_size == size
    info = describe(path)
    assert info["offsets"].startswith("implied") and info["stored_ids"] == "int32" and info["checksum"] == "ok"
    loaded = HammingIndex.load(path, mmap=mmap)
    q = bits[:7]
    np.testing.assert_array_equal(loaded.search(pack_bits(q), 20)[1], index.search(pack_bits(q), 20)[1])
    assert_same_range(loaded.range_search(pack_bits(q), 3), range_reference(bits, ids, q, 3))
    np.testing.assert_array_equal(loaded.ids, ids)


def test_a_duplicate_brings_offsets_back(tmp_path: Path) -> None:
    index, bits, ids = _random_index(500)
    assert index.memory_bytes()["offsets"] == 0
    index.add(pack_bits(bits[:1]), ids=np.array([10**6]))
    assert index.memory_bytes()["offsets"] == 4 * 501  # 500 distinct codes: 501 int32 bounds
    path = tmp_path / "dup.dhi"
    index.save(path)
    assert not describe(path)["offsets"].startswith("implied")
    d, i = HammingIndex.load(path).search(pack_bits(bits[:1]), 2)
    assert d.tolist() == [[0, 0]] and i.tolist() == [[ids[0], 10**6]]
    index.remove(np.array([10**6]))
    assert index.memory_bytes()["offsets"] == 0  # distinct again after the remove


def test_directory_lookups_on_clustered_codes_match_brute_force() -> None:
    """Crowded directory buckets (clustered codes share their top bits): probing bisects them."""
    rng = np.random.default_rng(6)
    bits = clustered_bits(rng, 3_000, 40, centres=6, flip=0.05)
    index = HammingIndex(40, num_threads=2)
    index.add(pack_bits(bits))
    q = bits[:20]
    d, i = index.search(pack_bits(q), 30)
    wd, wi = knn(bits, np.arange(len(bits)), q, 30)
    np.testing.assert_array_equal(d, wd)
    np.testing.assert_array_equal(i, wi)
    assert F_NO_OFFSETS == 8
