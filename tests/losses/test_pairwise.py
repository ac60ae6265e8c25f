"""Each later loss recomputed from its paper's formula with plain loops over a hand-made batch."""

import math

import pytest
import torch

from dnnh.losses import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, hadamard_centers

U = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, -0.5, 1.5, -0.2], [-1.0, 1.0, -0.5, 0.3]])
Y = torch.tensor([0, 0, 1])


def sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def test_dpsh_against_formula():
    eta = 0.3
    pairs = []
    for i in range(3):
        for j in range(3):
            if i != j:
                theta = 0.5 * float(U[i] @ U[j])
                s = 1.0 if Y[i] == Y[j] else 0.0
                pairs.append(math.log(1 + math.exp(theta)) - s * theta)
    quant = sum(sum((float(u) - sign(float(u))) ** 2 for u in row) for row in U) / 3
    expected = sum(pairs) / len(pairs) + eta * quant
    assert DPSHLoss(eta=eta).batch_loss(U, Y).item() == pytest.approx(expected, rel=1e-5)


def test_dsh_against_formula():
    m, alpha = 3.0, 0.05
    terms = []
    for i in range(3):
        for j in range(3):
            if i != j:
                d = float(((U[i] - U[j]) ** 2).sum())
                terms.append(0.5 * d if Y[i] == Y[j] else 0.5 * max(m - d, 0.0))
    reg = sum(sum(abs(abs(float(u)) - 1) for u in row) for row in U) / 3
    expected = sum(terms) / len(terms) + alpha * 2 * reg
    assert DSHLoss(nbits=4, margin=m, alpha=alpha).batch_loss(U, Y).item() == pytest.approx(expected, rel=1e-5)


def test_dsh_default_margin_is_twice_bits():
    assert DSHLoss(nbits=48).margin == 96


def test_csq_against_formula_and_centres():
    loss = CSQLoss(nbits=4, n_classes=2, lam=0.5)
    c = loss.centers
    assert c.shape == (2, 4) and float(c[0] @ c[1]) == 0.0  # Hadamard rows are orthogonal
    total, quant = 0.0, 0.0
    for i in range(3):
        for k in range(4):
            v = math.tanh(float(U[i, k]))
            p, t = (v + 1) / 2, (float(c[Y[i], k]) + 1) / 2
            total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
            quant += (abs(v) - 1) ** 2
    expected = total / 3 + 0.5 * quant / 12
    assert loss(U, Y)[0].item() == pytest.approx(expected, rel=1e-5)


def test_hadamard_centres_fall_back_to_random_when_too_many_classes():
    c = hadamard_centers(40, 12)
    assert c.shape == (40, 12) and set(c.unique().tolist()) == {-1.0, 1.0}


def test_classifier_reference_is_cross_entropy_on_tanh_layer():
    torch.manual_seed(0)
    loss = ClassifierLoss(nbits=4, n_classes=2)
    logits = loss.classifier(torch.tanh(U))
    expected = sum(-torch.log_softmax(logits[i], 0)[Y[i]].item() for i in range(3)) / 3
    assert loss(U, Y)[0].item() == pytest.approx(expected, rel=1e-5)


def test_multilabel_similarity_used_by_dpsh():
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]])
    u = torch.zeros(3, 2)
    # theta = 0 everywhere: each pair contributes log 2 whatever s is, quantisation of 0 is 0
    assert DPSHLoss()(u, labels)[0].item() == pytest.approx(math.log(2), rel=1e-6)
