"""The losses keep the host off the device: same values and gradients as plain loops, and no call that would wait.

On a GPU the host waits for the device whenever a loss reads a device value (``.item()``, ``int()``,
``bool()``), selects with a boolean mask or calls ``nonzero`` (the result's size depends on the data).
A CPU run cannot time that, but :class:`dnnh.testing.syncs.HostSyncCounter` records the calls; here
every tensor a loss touches counts as on the device (:class:`EveryTensorOnTheDevice`), and each loss's
forward and backward must make none. Each rewritten loss (DPSH, DSH, DTSH, HashNet, CNNH) is checked
against a plain loop over its pairs, triplets or elements on random batches, degenerate ones included
(one item, one class, an item without a label).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnnh.losses import (CNNHLoss, DPSHLoss, DSHLoss, DTSHLoss, HashNetLoss, ThreeStreamTriplets,
                         TripletRankingLoss)
from dnnh.testing.syncs import HostSyncCounter
from dnnh.training.objectives import LOSSES, ObjectiveSpec, make_objective

class EveryTensorOnTheDevice(HostSyncCounter):
    """:class:`HostSyncCounter` for code whose every tensor lives on the GPU in training, as a loss's do.

    The counter's fake mode follows tensors made or moved to ``cuda``; a loss's masks are made with
    ``device=u.device`` and its buffers moved by ``Module.to``, which that tracking does not reach, so
    here every tensor counts as on the device.
    """

    def on_device(self, value: object) -> bool:
        return isinstance(value, torch.Tensor)


def test_the_counter_sees_each_kind_of_wait_on_cpu_tensors():
    x = torch.randn(4, 3)
    with EveryTensorOnTheDevice() as counter:
        mask = x > 0
        x[mask].sum(), x[:, mask[0]], bool(mask.any()), int(mask.sum()), float(x.sum()), x.sum().item()
        torch.nonzero(mask), torch.where(mask), x.tolist()
        x[torch.tensor([0, 2])], torch.where(mask, x, 0.0), x[:, None], len(x), x.to(torch.float64)  # no wait
    assert counter.syncs == ["mask-index", "mask-index", "__bool__", "__int__", "__float__", "item", "nonzero",
                             "nonzero", "tolist"]


# Plain loops: each pair, triplet or element on its own, torch scalars so that autograd gives the gradient.

def similar(labels: torch.Tensor, i: int, j: int) -> bool:
    if labels.ndim == 1:
        return bool(labels[i] == labels[j])
    return bool((labels[i] * labels[j]).sum() > 0)


def mean(terms: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.stack(terms).mean() if terms else like.sum() * 0


def quantisation(u: torch.Tensor) -> torch.Tensor:
    return mean([(u[i, k] - torch.sign(u[i, k]).detach()) ** 2 for i in range(len(u)) for k in range(u.shape[1])], u)


def pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(n) if i != j]


def dpsh_by_loop(u, labels, eta):
    terms = []
    for i, j in pairs(len(u)):
        theta = 0.5 * (u[i] * u[j]).sum()
        terms.append(F.softplus(theta) - similar(labels, i, j) * theta)
    return mean(terms, u) + eta * quantisation(u)


def dsh_by_loop(u, labels, margin, alpha):
    terms = []
    for i, j in pairs(len(u)):
        d = ((u[i] - u[j]) ** 2).sum()
        terms.append(0.5 * d if similar(labels, i, j) else 0.5 * torch.relu(margin - d))
    regular = mean([(u[i].abs() - 1).abs().sum() for i in range(len(u))], u)
    return mean(terms, u) + alpha * 2 * regular


def dtsh_by_loop(u, labels, alpha, lam):
    per_anchor, count = [], 0
    for i in range(len(u)):
        terms = [F.softplus(-(0.5 * (u[i] * u[j]).sum() - 0.5 * (u[i] * u[k]).sum() - alpha))
                 for j in range(len(u)) for k in range(len(u))
                 if j != i and similar(labels, i, j) and not similar(labels, i, k)]
        if terms:
            per_anchor.append(torch.stack(terms).mean())
            count += len(terms)
    return mean(per_anchor, u) + lam * quantisation(u), count


def hashnet_by_loop(u, labels, alpha, beta):
    z = torch.tanh(beta * u)
    n1 = max(sum(similar(labels, i, j) for i, j in pairs(len(u))), 1)
    n0 = max(sum(not similar(labels, i, j) for i, j in pairs(len(u))), 1)
    n = len(pairs(len(u)))
    terms = []
    for i, j in pairs(len(u)):
        s = similar(labels, i, j)
        ip = alpha * (z[i] * z[j]).sum()
        terms.append((n / n1 if s else n / n0) * (F.softplus(ip) - s * ip))
    return torch.stack(terms).sum() / n if terms else u.sum() * 0


def cnnh_by_loop(u, targets):
    return mean([F.softplus(u[i, k]) - targets[i, k] * u[i, k]
                 for i in range(len(u)) for k in range(u.shape[1])], u)


def random_batch(seed: int):
    """u in float64 and labels: single-label, one class only, or multi-label with an item without labels."""
    rng = np.random.default_rng(seed)
    size = [1, 2, 5, 8][seed % 4]
    u = torch.from_numpy(rng.normal(0, 1.5, (size, 5)))
    kind = seed % 3
    if kind == 0:
        labels = torch.from_numpy(rng.integers(0, 3, size))
    elif kind == 1:
        labels = torch.zeros(size, dtype=torch.long)  # no dissimilar pair, no triplet
    else:
        labels = torch.from_numpy((rng.random((size, 3)) < 0.4).astype(np.int64))
    return u, labels


def value_and_gradient(loss_of, u):
    u = u.clone().requires_grad_(True)
    value = loss_of(u)
    value = value[0] if isinstance(value, tuple) else value
    value.backward()
    return value.detach(), u.grad


def assert_same(ours, loop, u):
    (value, grad), (expected, expected_grad) = value_and_gradient(ours, u), value_and_gradient(loop, u)
    assert torch.isfinite(value) and torch.allclose(value, expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_dpsh_and_dsh_equal_their_loops(seed):
    u, labels = random_batch(seed)
    assert_same(lambda x: DPSHLoss(eta=0.3).batch_loss(x, labels), lambda x: dpsh_by_loop(x, labels, 0.3), u)
    assert_same(lambda x: DSHLoss(5, margin=4.0, alpha=0.05).batch_loss(x, labels),
                lambda x: dsh_by_loop(x, labels, 4.0, 0.05), u)


@pytest.mark.parametrize("seed", SEEDS)
def test_dtsh_equals_its_loop_and_counts_the_triplets(seed):
    u, labels = random_batch(seed)
    assert_same(lambda x: DTSHLoss(alpha=1.5, lam=0.4)(x, labels), lambda x: dtsh_by_loop(x, labels, 1.5, 0.4)[0], u)
    assert int(DTSHLoss()(u, labels)[1]) == dtsh_by_loop(u, labels, 5.0, 1.0)[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_hashnet_equals_its_loop_along_the_continuation(seed):
    u, labels = random_batch(seed)
    loss = HashNetLoss(5, alpha_q=10.0, gamma=0.5, power=0.5, step=2)
    for steps in (1, 2, 3):  # the scale moves at step 2: beta = (1 + 0.5 * 2)^0.5
        beta = (1 + 0.5 * (steps // 2 * 2)) ** 0.5
        assert_same(lambda x: loss.batch_loss(x, labels), lambda x, beta=beta: hashnet_by_loop(x, labels, 2.0, beta), u)
        assert int(loss.steps) == steps and loss.beta == pytest.approx(beta, rel=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_cnnh_equals_its_loop(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 12)
    train_idx = np.array([0, 2, 3, 5, 7, 8, 11])
    objective = CNNHLoss(labels, train_idx, nbits=4, seed=seed).double()
    batch = torch.from_numpy(rng.choice(train_idx, 5))
    rows = [int(np.flatnonzero(train_idx == i)[0]) for i in batch]
    u = torch.from_numpy(rng.normal(0, 2, (5, 4)))
    assert_same(lambda x: objective(x, torch.from_numpy(labels)[batch], None, batch),
                lambda x: cnnh_by_loop(x, objective.targets[rows]), u)


LABELS = np.repeat(np.arange(3), 4)  # 12 items, 3 classes


@pytest.mark.parametrize("name", [name for name in LOSSES if name != "triplet"])
@pytest.mark.parametrize("multilabel", [False, True])
def test_no_loss_makes_the_host_wait(name, multilabel):
    labels = np.eye(3, dtype=np.int64)[LABELS] if multilabel else LABELS
    if multilabel:
        labels[0, 1] = 1  # an item with two labels
    torch.manual_seed(0)
    objective = make_objective(name, ObjectiveSpec(nbits=8), labels, np.arange(12))
    idx = torch.tensor([0, 1, 4, 5, 8, 9, 2, 6])
    raw = torch.randn(8, 8, requires_grad=True)
    outputs = torch.sigmoid(raw) if objective.input == "codes" else raw
    with EveryTensorOnTheDevice() as counter:
        loss, count = objective(outputs, torch.from_numpy(labels)[idx], None, idx)
        loss.backward()
    assert counter.syncs == [] and torch.isfinite(loss) and raw.grad is not None


@pytest.mark.parametrize("reduction", ["mean", "active"])
@pytest.mark.parametrize("smooth", [False, True])
def test_the_triplet_loss_makes_the_host_wait_nowhere_but_in_the_miner(reduction, smooth):
    # Mining (dnnh.miners) picks the triplets with nonzero: that wait is the miner's, not the loss's.
    loss = TripletRankingLoss(margin=1.0, reduction=reduction, smooth=smooth)
    codes = torch.rand(9, 8, requires_grad=True)
    a, p, n = torch.tensor([0, 1, 3]), torch.tensor([1, 2, 4]), torch.tensor([6, 7, 8])
    with EveryTensorOnTheDevice() as counter:
        value = loss.from_matrix(loss.distance.matrix(codes, codes), a, p, n)
        value = value + ThreeStreamTriplets(loss)(codes, torch.zeros(9, dtype=torch.long))[0]
        value.backward()
    assert counter.syncs == [] and torch.isfinite(value)


def test_a_count_left_on_the_device_reaches_the_epoch_record_as_a_number(tmp_path):
    import json

    from dnnh.data.digits import load_digits
    from dnnh.data.splits import paper_split
    from dnnh.training.config import TrainConfig
    from dnnh.training.train import train

    digits = load_digits()
    split = paper_split(digits.labels, queries_per_class=5, train_per_class=20, val_fraction=0.2, seed=0)
    config = TrainConfig.from_recipe("modern", loss="dtsh", bits=12, input_size=8, epochs=1, batch_size=40,
                                     per_class=4, num_workers=0, threads=1)
    record = train(config, digits, split, tmp_path / "run", progress=False).history[0]
    assert isinstance(record["triplets_per_s"], float) and record["triplets_per_s"] > 0
    json.dumps(record)
