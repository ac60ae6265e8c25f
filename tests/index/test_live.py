"""LiveIndex: main + delta + tombstones answer as one flat scan, and compaction is all or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.codes import hamming_distances, pack_bits
from dnnh.index import HammingIndex
from dnnh.index.live import LiveIndex

NBITS = 24


def codes_of(rng, n):
    return pack_bits(rng.integers(0, 2, (n, NBITS), dtype=np.uint8))


def brute(truth, q, k, radius=None):
    ids = np.array(sorted(truth), np.int64)
    dist = hamming_distances(q, np.stack([truth[int(i)] for i in ids]))[0]
    order = np.lexsort((ids, dist))
    return [(int(ids[i]), int(dist[i])) for i in order if radius is None or dist[i] <= radius][:k]


def test_prepare_builds_the_tables_before_any_search():
    """Issue 21.5: the store warmed indexes by side effect (a bare ndistinct, a dummy search)."""
    rng = np.random.default_rng(0)
    index = HammingIndex(NBITS)
    index.add(codes_of(rng, 200))
    assert index._tables is None
    assert index.prepare() is index
    assert index._tables is not None and index.memory_usage()["tables"] > 0
    assert HammingIndex(NBITS).prepare().ntotal == 0  # an empty index prepares to nothing


def test_merged_search_matches_a_flat_scan_through_adds_removes_and_compactions():
    rng = np.random.default_rng(1)
    live = LiveIndex(NBITS)
    base = codes_of(rng, 300)
    main = HammingIndex(NBITS)
    main.add(base, ids=np.arange(300) * 2)
    live.load(main)
    truth = {i * 2: c for i, c in enumerate(base)}
    next_id = 1000
    for step in range(40):
        if step % 3 == 0:
            victim = int(rng.choice(sorted(truth)))
            assert live.remove(victim) and not live.remove(victim)
            del truth[victim]
        else:
            new = codes_of(rng, 3)
            ids = np.arange(next_id, next_id + 3)
            next_id += 3
            assert live.add(new, ids).tolist() == ids.tolist()
            assert live.add(new, ids).tolist() == []  # already held: replay is idempotent
            truth.update({int(i): c for i, c in zip(ids, new)})
        if step % 10 == 9:
            live.compact()
            assert live.pending == (0, 0)
        q = codes_of(rng, 1)
        assert [(h.id, h.distance) for h in live.search(q, 20)] == brute(truth, q, 20)
        assert [(h.id, h.distance) for h in live.search(q, 999, radius=8)] == brute(truth, q, 999, 8)
    assert live.ntotal == len(truth)


def test_a_compaction_whose_persist_fails_changes_nothing():
    rng = np.random.default_rng(2)
    live = LiveIndex(NBITS)
    live.add(codes_of(rng, 5), np.arange(5))
    live.remove(2)

    def fail(index):
        assert index.ntotal == 4 and index.ids.tolist() == [0, 1, 3, 4]
        raise OSError("disk full")

    with pytest.raises(OSError):
        live.compact(persist=fail)
    assert live.pending == (4, 0) and live.ntotal == 4 and live.code(2) is None
