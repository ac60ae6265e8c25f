"""Each later loss recomputed from its paper's formula with plain loops over a hand-made batch."""

import math

import pytest
import torch

from dnnh.losses import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, hadamard_centers
from dnnh.losses.pairwise import tie_breaks

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
    # eta weighs each element: the squared errors are averaged over items and bits (3 x 4)
    quant = sum(sum((float(u) - sign(float(u))) ** 2 for u in row) for row in U) / 12
    expected = sum(pairs) / len(pairs) + eta * quant
    assert DPSHLoss(eta=eta).batch_loss(U, Y).item() == pytest.approx(expected, rel=1e-5)


def test_dpsh_quantisation_weight_does_not_grow_with_the_code_length():
    # Orthogonal rows: theta = 0 for every pair, so the likelihood is log 2 and the rest is quantisation.
    u = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    y = torch.tensor([0, 1])
    short = DPSHLoss(eta=1.0).batch_loss(u, y) - math.log(2)
    long = DPSHLoss(eta=1.0).batch_loss(torch.cat([u, torch.zeros(2, 46)], 1), y) - math.log(2)
    assert short.item() == pytest.approx(0.25 / 2, rel=1e-5)  # (0.5 - 1)^2 on half the elements
    assert long.item() == pytest.approx(0.25 * 2 / 96, rel=1e-5)  # zeros cost nothing: sign(0) = 0


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
    expected = total / 12 + 0.5 * quant / 12  # both means over items and bits, as the reference
    assert loss(U, Y)[0].item() == pytest.approx(expected, rel=1e-5)


def min_and_mean_distance(c):
    d = [int((c[i] != c[j]).sum()) for i in range(len(c)) for j in range(i + 1, len(c))]
    return min(d), sum(d) / len(d)


@pytest.mark.parametrize("nbits", [12, 24, 48])
def test_random_centres_follow_the_reference_rule(nbits):
    # Not a power of two: every centre is a random row with nbits / 2 entries -1, redrawn until
    # every pair is more than nbits / 4 apart and the mean distance is at least nbits / 2.
    c = hadamard_centers(10, nbits, seed=0)
    assert c.shape == (10, nbits) and set(c.unique().tolist()) == {-1.0, 1.0}
    assert all(int((row == -1).sum()) == nbits // 2 for row in c)
    low, mean = min_and_mean_distance(c)
    assert low > nbits / 4 and mean >= nbits / 2
    assert torch.equal(c, hadamard_centers(10, nbits, seed=0))  # seeded
    assert not torch.equal(c, hadamard_centers(10, nbits, seed=1))
    for seed in range(1, 6):
        low, mean = min_and_mean_distance(hadamard_centers(10, nbits, seed=seed))
        assert low > nbits / 4 and mean >= nbits / 2


def test_power_of_two_lengths_use_hadamard_rows_then_their_negations_then_random_rows():
    c = hadamard_centers(10, 32)
    assert torch.equal(c @ c.T, 32 * torch.eye(10))  # ten orthogonal rows
    c = hadamard_centers(6, 4)
    assert torch.equal(c[4:], -c[:2]) and torch.equal(c[:4] @ c[:4].T, 4 * torch.eye(4))
    c = hadamard_centers(129, 64)  # 128 Hadamard rows, one random row filtered against all of them
    assert torch.equal(c[64:128], -c[:64]) and int((c[128] == -1).sum()) == 32
    low, mean = min_and_mean_distance(c)
    assert low > 16 and mean >= 32


def test_centres_that_cannot_be_drawn_are_a_clear_error_after_bounded_tries():
    with pytest.raises(ValueError, match=r"could not draw 40 CSQ hash centres of 12 bits .* more than 3 bits apart "
                                         r"and 6 apart on average in 50 tries"):
        hadamard_centers(40, 12, max_tries=50)


def test_multilabel_centre_ties_take_seeded_random_bits():
    loss = CSQLoss(nbits=4, n_classes=2, seed=3)
    c, ties = loss.centers, loss.ties
    assert torch.equal(c, torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1]]))
    target = loss.targets(torch.tensor([[1, 1], [0, 1], [0, 0]]))
    assert torch.equal(target[0], torch.tensor([1.0, ties[1], 1, ties[3]]))  # bits 1, 3 cancel
    assert torch.equal(target[1], c[1]) and torch.equal(target[2], ties)  # no label: every bit a tie
    assert torch.equal(ties, tie_breaks(4, seed=3)) and set(ties.tolist()) <= {-1.0, 1.0}
    drawn = torch.stack([tie_breaks(16, seed=s) for s in range(5)])
    assert (drawn == -1).any() and (drawn == 1).any()  # not every tie goes to +1


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


def csq_gradient_by_hand(u: torch.Tensor, target: torch.Tensor, lam: float) -> torch.Tensor:
    """dL/du of the reference's CSQ loss (DeepHash-pytorch's CSQ.py), worked by hand.

    v = tanh(u), p = (v + 1) / 2 = sigmoid(2u), t = (c + 1) / 2, N = items x bits;
    L = mean BCE(p, t) + lam * mean (|v| - 1)^2, so
    dL/du = [2 (sigmoid(2u) - t) + lam * 2 (|v| - 1) sign(v) (1 - v^2)] / N.
    """
    v = torch.tanh(u)
    t = (target + 1) / 2
    return (2 * (torch.sigmoid(2 * u) - t) + lam * 2 * (v.abs() - 1) * torch.sign(v) * (1 - v * v)) / u.numel()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_csq_keeps_pushing_bits_far_on_the_wrong_side_of_their_centre(dtype):
    # Bits at |u| = 7.5, half on the wrong side of their centre: the reference's gradient there is
    # about 2 / N; a clamp of the probability to [1e-6, 1 - 1e-6] made it 0 (a dead zone past 6.9).
    loss = CSQLoss(nbits=4, n_classes=2, lam=1e-4)
    labels = torch.tensor([0, 1, 0])
    centres = loss.targets(labels).to(dtype)
    side = torch.tensor([[1.0, -1, 1, -1], [-1, -1, 1, 1], [1, 1, -1, -1]], dtype=dtype)
    u = (7.5 * side * centres).requires_grad_(True)
    loss(u, labels)[0].backward()
    expected = csq_gradient_by_hand(u.detach().double(), centres.double(), 1e-4)
    wrong = side < 0
    assert expected[wrong].abs().min() > 1.9 / u.numel()  # the reference keeps pushing there
    # float32 rounds sigmoid(15) to within 6e-8 of 1: an absolute tolerance far below the 2 / N at stake
    tolerance = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 0.0}
    assert torch.allclose(u.grad.double(), expected, **tolerance)


#: DeepHash-pytorch's DPSH.py get_config: "alpha", the weight of the mean squared quantisation error.
REFERENCE_DPSH_ALPHA = 0.1


def dpsh_reference_style(u: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """DeepHash-pytorch's DPSH loss written out by hand, on a memory bank that holds exactly this batch.

    The reference pairs the batch with a memory U of every training code, refreshed with ``u.data``:
    the other side of each pair is a detached copy. Pairs i != j, as dnnh's (the reference also
    pairs an item with itself).
    """
    other = u.detach()
    terms = []
    for i in range(len(u)):
        for j in range(len(u)):
            if i != j:
                theta = 0.5 * (u[i] * other[j]).sum()
                s = 1.0 if labels[i] == labels[j] else 0.0
                terms.append(torch.nn.functional.softplus(theta) - s * theta)
    return torch.stack(terms).mean() + alpha * ((u - torch.sign(u).detach()) ** 2).mean()


def gradient(loss_of, u):
    u = u.clone().requires_grad_(True)
    loss_of(u).backward()
    return u.grad


def test_dpsh_gradient_is_twice_the_references_and_the_default_eta_weighs_quantisation_as_they_do():
    torch.manual_seed(0)
    u, labels = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 0])
    # Both sides of a pair carry the gradient here (the paper's), one side there: the likelihood's is twice theirs.
    ours = gradient(lambda x: DPSHLoss(eta=0.0).batch_loss(x, labels), u)
    theirs = gradient(lambda x: dpsh_reference_style(x, labels, alpha=0.0), u)
    assert torch.allclose(ours, 2 * theirs, rtol=1e-10, atol=0)
    # So the default eta is twice the reference's alpha, and the whole gradient is twice theirs:
    # the same direction, quantisation weighed against the likelihood as in the reference.
    assert DPSHLoss().eta == 2 * REFERENCE_DPSH_ALPHA
    ours = gradient(lambda x: DPSHLoss().batch_loss(x, labels), u)
    theirs = gradient(lambda x: dpsh_reference_style(x, labels, alpha=REFERENCE_DPSH_ALPHA), u)
    assert torch.allclose(ours, 2 * theirs, rtol=1e-10, atol=0)


def test_dpsh_default_eta_is_one_value_everywhere():
    from dnnh.config import ObjectiveSpec, TrainConfig

    assert TrainConfig().eta == ObjectiveSpec(nbits=8).eta == DPSHLoss().eta
