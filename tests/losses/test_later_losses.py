"""OrthoHash, DPN, DTSH, HashNet and GreedyHash recomputed from their formulas with plain loops."""

import math

import pytest
import torch

from dnnh.losses import DPNLoss, DTSHLoss, GreedyHashLoss, HashNetLoss, OrthoHashLoss, make_codebook
from dnnh.losses.codebook import dpn_targets

U = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, -0.5, 1.5, -0.2], [-1.0, 1.0, -0.5, 0.3], [0.2, 0.4, -1.2, 0.8]])
Y = torch.tensor([0, 0, 1, 2])
Y_MULTI = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])


def sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def dot(a, b):
    return sum(float(x) * float(y) for x, y in zip(a, b))


def softplus(x):
    return math.log1p(math.exp(x))


def cosine(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def test_orthohash_against_formula():
    loss = OrthoHashLoss(4, 3, margin=0.3, scale=8.0, codebook="bernoulli", seed=1)
    book = loss.codebook
    terms = []
    for i in range(4):
        logits = [8.0 * (cosine(U[i], book[c]) - (0.3 if c == Y[i] else 0.0)) for c in range(3)]
        log_z = math.log(sum(math.exp(v) for v in logits))
        terms.append(log_z - logits[int(Y[i])])
    assert loss.batch_loss(U, Y).item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_orthohash_multilabel_label_smoothing_against_formula():
    loss = OrthoHashLoss(4, 3, margin=0.2, scale=8.0, seed=2)
    book = loss.codebook
    terms = []
    for i in range(4):
        labels = [int(v) for v in Y_MULTI[i]]
        logits = [8.0 * (cosine(U[i], book[c]) - 0.2 * labels[c]) for c in range(3)]
        log_z = math.log(sum(math.exp(v) for v in logits))
        terms.append(-sum(labels[c] / sum(labels) * (logits[c] - log_z) for c in range(3)))
    assert loss.batch_loss(U, Y_MULTI).item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_orthohash_codebooks_are_pm1_and_hadamard_rows_orthogonal():
    bern = make_codebook("bernoulli", 10, 48, seed=0)
    assert set(bern.unique().tolist()) == {-1.0, 1.0} and bern.shape == (10, 48)
    had = make_codebook("hadamard", 10, 16, seed=0)
    gram = had @ had.T
    assert torch.equal(gram[:8, :8], 16 * torch.eye(8))  # rows of a Hadamard matrix
    with pytest.raises(ValueError, match="codebook must be one of"):
        make_codebook("gaussian", 3, 8)


def test_dpn_against_formula():
    loss = DPNLoss(4, 3, margin=0.7, seed=3)
    t = loss.targets
    total = sum(max(0.0, 0.7 - float(U[i, k]) * float(t[int(Y[i]), k])) for i in range(4) for k in range(4))
    assert loss.batch_loss(U, Y).item() == pytest.approx(total / 16, rel=1e-5)


def test_dpn_targets_have_half_the_bits_negative_and_multilabel_ties_take_the_tie_bit():
    t = dpn_targets(5, 12, seed=0)
    assert ((t == -1).sum(1) == 6).all()
    loss = DPNLoss(4, 3, seed=0)
    loss.targets = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    u = torch.zeros(1, 4)
    # labels 0 and 1: summed targets (2, 0, 0, -2): bits 1 and 2 cancel and take the tie bits
    expected_t = [1.0, float(loss.ties[1]), float(loss.ties[2]), -1.0]
    margin_terms = [max(0.0, 1.0 - 0.0 * e) for e in expected_t]
    assert loss.batch_loss(u, torch.tensor([[1, 1, 0]])).item() == pytest.approx(sum(margin_terms) / 4)
    u = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    got = loss.batch_loss(u, torch.tensor([[1, 1, 0]])).item()
    assert got == pytest.approx(sum(max(0.0, 1.0 - 0.5 * e) for e in expected_t) / 4, rel=1e-6)


def test_dtsh_against_formula():
    alpha, lam = 1.5, 0.4
    per_anchor, count = [], 0
    for i in range(4):
        terms = []
        for j in range(4):
            for k in range(4):
                if j != i and Y[j] == Y[i] and Y[k] != Y[i]:
                    d = 0.5 * dot(U[i], U[j]) - 0.5 * dot(U[i], U[k]) - alpha
                    terms.append(-(d - math.log(1 + math.exp(d))))
        if terms:
            per_anchor.append(sum(terms) / len(terms))
            count += len(terms)
    quant = sum((float(u) - sign(float(u))) ** 2 for row in U for u in row) / 16
    expected = sum(per_anchor) / len(per_anchor) + lam * quant
    loss, n = DTSHLoss(alpha=alpha, lam=lam)(U, Y)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert n == count == 4  # anchors 0 and 1, each with one positive and two negatives


def test_dtsh_without_any_triplet_is_the_quantisation_term_alone():
    loss, n = DTSHLoss(lam=1.0)(U[:1], Y[:1])
    assert n == 0
    assert loss.item() == pytest.approx(sum((float(u) - sign(float(u))) ** 2 for u in U[0]) / 4)


def test_hashnet_against_formula_and_continuation_schedule():
    loss = HashNetLoss(4, alpha_q=10.0, gamma=0.005, power=0.5, step=2)
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    n1 = sum(1 for i, j in pairs if Y[i] == Y[j])
    n0 = len(pairs) - n1

    def expected(beta):
        z = [[math.tanh(beta * float(v)) for v in row] for row in U]
        total = 0.0
        for i, j in pairs:
            s = 1.0 if Y[i] == Y[j] else 0.0
            ip = 10.0 / 4 * dot(z[i], z[j])
            w = len(pairs) / n1 if s else len(pairs) / n0
            total += w * (softplus(ip) - s * ip)
        return total / len(pairs)

    # steps 1, 2, 3: the scale is recomputed at every multiple of ``step`` (2): 1, (1 + 0.005 * 2)^0.5, same
    for beta in (1.0, 1.01 ** 0.5, 1.01 ** 0.5):
        assert loss.batch_loss(U, Y).item() == pytest.approx(expected(beta), rel=1e-5)
    assert int(loss.steps) == 3 and "steps" in loss.state_dict()
    with torch.no_grad():  # evaluation does not advance the schedule
        loss.batch_loss(U, Y)
    assert int(loss.steps) == 3


def test_greedyhash_against_formula_and_straight_through_gradient():
    torch.manual_seed(0)
    loss = GreedyHashLoss(4, 3, alpha=0.2)
    w = loss.classifier.weight.detach()
    terms = []
    for i in range(4):
        b = [sign(float(v)) for v in U[i]]
        logits = [dot(w[c], b) for c in range(3)]
        terms.append(math.log(sum(math.exp(v) for v in logits)) - logits[int(Y[i])])
    cubic = sum(abs(abs(float(v)) - 1) ** 3 for row in U for v in row) / 16
    u = U.clone().requires_grad_(True)
    value = loss.batch_loss(u, Y)
    assert value.item() == pytest.approx(sum(terms) / 4 + 0.2 * cubic, rel=1e-5)
    # the gradient of the classifier term reaches u as if sign were the identity
    u2 = U.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(loss.classifier(torch.sign(u2.detach()) + (u2 - u2.detach())), Y).backward()
    cubic_grad = 0.2 * 3 * (U.abs() - 1).abs() ** 2 * torch.sign(U.abs() - 1) * torch.sign(U) / 16
    value.backward()
    assert torch.allclose(u.grad, u2.grad + cubic_grad, atol=1e-6)


def test_orthohash_trains_and_encodes_the_batch_normalised_codes():
    from dnnh.config import TrainConfig
    from dnnh.nn import DNNH

    assert TrainConfig(loss="orthohash").model_config(1).code_norm
    assert not any(TrainConfig(loss=loss).model_config(1).code_norm for loss in ("triplet", "csq", "dpn"))
    torch.manual_seed(0)
    model = DNNH.from_config(TrainConfig(loss="orthohash", nbits=8, input_size=8).model_config(1))
    images = torch.randn(16, 1, 16, 16)
    model.train()
    u = model.logits(images)  # batch statistics while training: every bit centred on the batch
    assert torch.allclose(u.mean(0), model.net.head.code_norm.bias, atol=1e-5)
    model.eval()
    with torch.no_grad():  # the running statistics at encoding time: the code is sign(BN(u))
        assert torch.equal(model.encode(images), (model.logits(images) > 0).to(torch.uint8))
    assert "net.head.code_norm.running_mean" in model.state_dict()


def test_every_new_loss_is_built_by_the_registry_with_its_config_field():
    import numpy as np

    from dnnh.config import TrainConfig
    from dnnh.training.objectives import make_objective

    labels, train = np.array([0, 1, 2, 0, 1, 2]), np.arange(6)
    built = {loss: make_objective(loss, TrainConfig(loss=loss, nbits=8, **{field: value}).objective_spec(), labels, train)
             for loss, field, value in [("orthohash", "ortho_margin", 0.4), ("dtsh", "dtsh_alpha", 2.0),
                                        ("hashnet", "hashnet_alpha", 4.0), ("greedyhash", "greedy_alpha", 0.5),
                                        ("dpn", "dpn_margin", 0.25)]}
    assert built["orthohash"].margin == 0.4 and built["orthohash"].codebook.shape == (3, 8)
    assert built["dtsh"].alpha == 2.0 and built["hashnet"].alpha == 0.5  # 4 / 8 bits
    assert built["greedyhash"].alpha == 0.5 and built["dpn"].margin == 0.25
    assert isinstance(make_objective("orthohash", TrainConfig(loss="orthohash", nbits=8, codebook="hadamard")
                                     .objective_spec(), labels, train), OrthoHashLoss)
    with pytest.raises(ValueError, match="codebook must be one of"):
        TrainConfig(loss="orthohash", codebook="gaussian")
    # a field another loss reads does not decide this one's run
    assert "dtsh_alpha" not in TrainConfig(loss="orthohash").decisive()
    assert TrainConfig(loss="dtsh").decisive()["dtsh_alpha"] == 5.0
