"""CNNH's second stage as a training objective: the loss worked by hand, its targets from stage 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnnh.losses import CNNHLoss
from dnnh.losses.cnnh import cnnh_target_codes, similarity_matrix


def test_objective_on_a_hand_made_batch():
    labels = np.array([0, 1, 0, 1, 2, 2])
    objective = CNNHLoss(labels, np.array([4, 0, 3]), nbits=2, seed=0)
    assert CNNHLoss.input == "logits"
    assert objective.position.tolist() == [1, -1, -1, 2, 0, -1]
    objective.targets.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # rows for items 4, 0, 3
    ln3 = math.log(3.0)
    u = torch.tensor([[0.0, ln3], [ln3, -ln3]], requires_grad=True)  # items 3 then 4
    loss, count = objective(u, torch.tensor([1, 2]), None, torch.tensor([3, 4]))
    # item 3, targets (1, 1): -ln 0.5, -ln 0.75; item 4, targets (1, 0): -ln 0.75, -ln(1 - 0.25)
    expected = (math.log(2.0) - 3 * math.log(0.75)) / 4
    assert loss.item() == pytest.approx(expected) and count == 2
    loss.backward()
    expected_grad = torch.tensor([[(0.5 - 1) / 4, (0.75 - 1) / 4], [(0.75 - 1) / 4, (0.25 - 0) / 4]])
    assert torch.allclose(u.grad, expected_grad)  # d BCE / d u = (sigmoid(u) - target) / count
    with pytest.raises(ValueError, match="indices"):
        objective(u, torch.tensor([1, 2]))
    with pytest.raises(IndexError, match="outside the training set"):
        objective(u, torch.tensor([1, 2]), None, torch.tensor([3, 1]))


def test_objective_targets_come_from_stage_one():
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2])
    train_idx = np.array([0, 1, 2, 3, 6, 7])
    objective = CNNHLoss(labels, train_idx, nbits=8, seed=0)
    expected = (cnnh_target_codes(similarity_matrix(labels[train_idx]), 8, seed=0).codes + 1) / 2
    assert np.array_equal(objective.targets.numpy(), expected.astype(np.float32))
    t = objective.targets
    assert torch.equal(t[0], t[2]) and torch.equal(t[1], t[3]) and torch.equal(t[4], t[5])
    assert not torch.equal(t[0], t[1]) and not torch.equal(t[0], t[4])


def test_trainer_trains_cnnh_and_checkpoints_its_targets(tmp_path):
    from dnnh.data.digits import load_digits
    from dnnh.data.splits import paper_split
    from dnnh.training.config import TrainConfig
    from dnnh.training.train import train

    digits = load_digits()
    split = paper_split(digits.labels, queries_per_class=5, train_per_class=20, val_fraction=0.2, seed=0)
    config = TrainConfig.from_recipe("modern", loss="cnnh", bits=12, input_size=8, epochs=1, batch_size=40,
                                     per_class=4, num_workers=0, threads=1)
    result = train(config, digits, split, tmp_path / "run", progress=False)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=True)
    expected = CNNHLoss(digits.labels, split.train, 12, seed=0).targets
    assert torch.equal(state["objective"]["targets"], expected)
