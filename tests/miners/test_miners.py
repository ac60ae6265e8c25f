import itertools

import numpy as np
import pytest
import torch

from dnnh.miners import BatchTripletMiner, ClassBalancedBatches, RandomTripletSampler
from dnnh.similarity import DotProduct, SquaredL2


def brute_force_triplets(dist, labels, strategy, margin):
    """All (a, p, n) by plain loops, filtered as each strategy defines."""
    n = len(labels)
    def rel(i, j):
        return (labels[i] == labels[j]) if labels.ndim == 1 else bool((labels[i] * labels[j]).sum() > 0)
    out = []
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or not rel(a, p) or rel(a, q):
            continue
        dap, daq = dist[a][p], dist[a][q]
        if strategy == "semi-hard" and not (dap < daq < dap + margin):
            continue
        if strategy == "hard" and not (daq <= dap):
            continue
        out.append((a, p, q))
    return sorted(out)


@pytest.mark.parametrize("strategy", ["all", "semi-hard", "hard"])
@pytest.mark.parametrize("multilabel", [False, True])
def test_mined_triplets_equal_brute_force(strategy, multilabel):
    rng = np.random.default_rng(3)
    labels = (rng.random((9, 3)) < 0.4).astype(np.uint8) if multilabel else rng.integers(0, 3, 9)
    dist = rng.random((9, 9))
    a, p, n = BatchTripletMiner(strategy, margin=0.3).from_matrix(torch.tensor(dist), torch.tensor(labels))
    got = sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    assert got == brute_force_triplets(dist, labels, strategy, 0.3)


def test_batch_hard_takes_farthest_positive_and_closest_negative():
    labels = torch.tensor([0, 0, 0, 1, 1])
    dist = torch.tensor([[0, 1, 5, 2, 3], [1, 0, 2, 9, 1], [5, 2, 0, 4, 4], [2, 9, 4, 0, 7], [3, 1, 4, 7, 0.]])
    a, p, n = BatchTripletMiner("batch-hard").from_matrix(dist, labels)
    assert a.tolist() == [0, 1, 2, 3, 4]
    assert p.tolist() == [2, 2, 0, 4, 3]
    assert n.tolist() == [3, 4, 3, 0, 1]


def test_similarity_matrix_is_mined_as_negated_distance():
    labels = torch.tensor([0, 0, 1])
    sim = torch.tensor([[9.0, 1.0, 5.0], [1.0, 9.0, 0.0], [5.0, 0.0, 9.0]])
    # anchor 0: positive 1 has similarity 1, negative 2 has 5 -> negative closer -> "hard"
    a, p, n = BatchTripletMiner("hard", distance=DotProduct()).from_matrix(sim, labels)
    assert (0, 1, 2) in set(zip(a.tolist(), p.tolist(), n.tolist()))
    assert (1, 0, 2) not in set(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.mark.parametrize("distance", [SquaredL2(), DotProduct()])
def test_miner_measures_with_its_own_distance(distance):
    """mine(embeddings) is from_matrix() of the miner's own distance matrix; anchors may come from elsewhere."""
    torch.manual_seed(0)
    x, anchors = torch.rand(8, 5), torch.rand(8, 5)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    miner = BatchTripletMiner("semi-hard", margin=0.5, distance=distance)
    got = miner.mine(x, labels, anchors)
    want = miner.from_matrix(distance.matrix(anchors, x), labels)
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_random_triplets_single_label_valid_and_cover_classes():
    labels = np.repeat(np.arange(4), 5)
    a, p, n = RandomTripletSampler(labels).sample(2000, np.random.default_rng(0))
    assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all()
    assert set(np.unique(n)) == set(range(20))  # every item serves as a negative at some point


def test_random_triplets_multilabel_share_and_disjoint():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 1]], dtype=np.uint8)
    a, p, n = RandomTripletSampler(labels).sample(500, np.random.default_rng(1))
    assert ((labels[a] & labels[p]).sum(1) > 0).all()
    assert ((labels[a] & labels[n]).sum(1) == 0).all()


def test_random_triplets_reproducible_by_generator_state():
    s = RandomTripletSampler(np.repeat(np.arange(3), 4))
    r1 = np.random.default_rng(5)
    s.sample(10, r1)
    state = r1.bit_generator.state
    first = s.sample(10, r1)
    r2 = np.random.default_rng(0)
    r2.bit_generator.state = state
    assert all(np.array_equal(x, y) for x, y in zip(first, s.sample(10, r2)))


def test_class_balanced_batches_hold_p_classes_of_k():
    labels = np.repeat(np.arange(10), 30)
    batches = ClassBalancedBatches(labels, batch_size=40, per_class=8).epoch(np.random.default_rng(0))
    assert len(batches) == 300 // 40
    for b in batches:
        counts = np.bincount(labels[b], minlength=10)
        assert sorted(counts[counts > 0].tolist()) == [8, 8, 8, 8, 8]
