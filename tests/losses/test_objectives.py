"""The one objective contract: every registered loss is built by name and called the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnnh.losses import MinedTriplets, ThreeStreamTriplets, TripletRankingLoss
from dnnh.losses.base import INPUTS
from dnnh.miners import BatchTripletMiner
from dnnh.similarity import DotProduct, SquaredL2
from dnnh.training.objectives import LOSSES, ObjectiveSpec, make_objective

LABELS = np.repeat(np.arange(3), 4)  # 12 items, 3 classes
TRAIN = np.arange(12)


@pytest.mark.parametrize("name", LOSSES)
def test_every_registered_objective_keeps_the_contract(name):
    torch.manual_seed(0)
    objective = make_objective(name, ObjectiveSpec(nbits=8, margin=1.0), LABELS, TRAIN)
    assert objective.input in INPUTS
    idx = np.array([0, 1, 4, 5, 8, 9])
    raw = torch.randn(6, 8, requires_grad=True)
    outputs = torch.sigmoid(raw) if objective.input == "codes" else raw
    loss, count = objective(outputs, torch.from_numpy(LABELS[idx]), None, torch.from_numpy(idx))
    assert loss.ndim == 0 and torch.isfinite(loss) and count > 0
    # an int where shapes tell it, else a 0-dim integer tensor left on the device (reading it would wait)
    assert isinstance(count, int) or (count.ndim == 0 and not count.is_floating_point() and count.device == raw.device)
    loss.backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


def test_registry_builds_the_named_forms():
    spec = ObjectiveSpec(nbits=8, margin=2.0, distance="dot", triplets="hard")
    mined = make_objective("triplet", spec, LABELS, TRAIN)
    assert isinstance(mined, MinedTriplets) and mined.miner.strategy == "hard"
    assert isinstance(mined.miner.distance, DotProduct) and isinstance(mined.loss.distance, DotProduct)
    assert isinstance(make_objective("triplet", ObjectiveSpec(nbits=8, triplets="random"), LABELS, TRAIN),
                      ThreeStreamTriplets)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_objective("arcface", spec, LABELS, TRAIN)


def test_mined_triplets_equal_the_loss_over_the_mined_triplets():
    torch.manual_seed(1)
    codes = torch.rand(12, 6)
    labels = torch.from_numpy(LABELS)
    loss = TripletRankingLoss(margin=0.5, reduction="mean")
    miner = BatchTripletMiner("all", margin=0.5)
    value, count = MinedTriplets(loss, miner)(codes, labels)
    a, p, n = miner.from_matrix(SquaredL2().matrix(codes), labels)
    assert count == len(a) == 12 * 3 * 8  # each anchor: 3 positives x 8 negatives
    assert value.item() == pytest.approx(loss(codes[a], codes[p], codes[n]).item(), rel=1e-5)


def test_miner_and_loss_must_share_a_distance():
    with pytest.raises(ValueError, match="same distance"):
        MinedTriplets(TripletRankingLoss(1.0, distance="dot"), BatchTripletMiner("all"))
