"""The miner's triplet mask and the objective that scores it (issue 34.8: no host wait on a GPU).

:meth:`BatchTripletMiner.triplet_mask` is a fixed-shape (B, B, B) mask; :meth:`~BatchTripletMiner.mine`
is its ``nonzero``. :class:`MaskMinedTriplets` must give :class:`MinedTriplets`'s loss and gradient
for every strategy, reduction, distance and the soft margin, and a separate query network's anchors.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from dnnh.losses import MinedTriplets, TripletRankingLoss
from dnnh.miners import STRATEGIES, BatchTripletMiner
from dnnh.testing.syncs import HostSyncCounter
from dnnh.training.objectives import MaskMinedTriplets, ObjectiveSpec, make_objective

SETTINGS = list(itertools.product(STRATEGIES, ("mean", "active"), ("l2", "dot"), (False, True), (False, True)))


@pytest.mark.parametrize(("strategy", "reduction", "distance", "smooth", "query"), SETTINGS)
def test_the_mask_objective_equals_the_index_lists(strategy, reduction, distance, smooth, query):
    torch.manual_seed(hash((strategy, reduction, distance, smooth, query)) % 1000)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])  # class 3: an anchor with no positive
    raw = torch.randn(12, 6, requires_grad=True)
    anchors_raw = torch.randn(12, 6, requires_grad=True)

    def run(kind):
        raw.grad = anchors_raw.grad = None
        loss = TripletRankingLoss(margin=1.5, distance=distance, reduction=reduction, smooth=smooth)
        miner = BatchTripletMiner(strategy, margin=1.5, distance=distance)
        outputs = torch.sigmoid(raw)
        value, count = kind(loss, miner)(outputs, labels, torch.sigmoid(anchors_raw) if query else None)
        value.backward()
        return value.detach(), int(count), raw.grad.clone(), None if not query else anchors_raw.grad.clone()

    want, got = run(MinedTriplets), run(MaskMinedTriplets)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert got[1] == want[1] > 0
    torch.testing.assert_close(got[2], want[2], rtol=1e-4, atol=1e-6)
    if query:
        torch.testing.assert_close(got[3], want[3], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mine_lists_exactly_the_masks_triplets_and_no_triplet_is_a_zero_on_the_graph(strategy):
    torch.manual_seed(1)
    codes, labels = torch.rand(10, 8), torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    miner = BatchTripletMiner(strategy, margin=0.5)
    mask = miner.triplet_mask(codes, labels)
    assert mask.shape == (10, 10, 10) and mask.dtype == torch.bool
    a, p, n = miner.mine(codes, labels)
    assert torch.equal(torch.stack([a, p, n]), torch.stack(torch.nonzero(mask, as_tuple=True)))
    one_class = torch.zeros(10, dtype=torch.long)
    raw = torch.randn(10, 8, requires_grad=True)
    value, count = MaskMinedTriplets(TripletRankingLoss(1.0), miner)(torch.sigmoid(raw), one_class)
    value.backward()
    assert value.item() == 0.0 and int(count) == 0 and raw.grad is not None


def test_the_mask_objective_never_makes_the_host_wait_and_is_what_a_gpu_gets():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    assert isinstance(make_objective("triplet", ObjectiveSpec(nbits=6), labels.numpy(), labels.numpy(),
                                     sync_free=True), MaskMinedTriplets)
    assert type(make_objective("triplet", ObjectiveSpec(nbits=6), labels.numpy(), labels.numpy())) is MinedTriplets
    with HostSyncCounter(fake=True) as counter:
        raw = torch.randn(8, 6, device="cuda", requires_grad=True)
        for strategy in STRATEGIES:
            objective = MaskMinedTriplets(TripletRankingLoss(1.0, reduction="active"), BatchTripletMiner(strategy))
            value, count = objective(torch.sigmoid(raw), labels.to("cuda", non_blocking=True))
            value.backward()
    assert counter.syncs == []
