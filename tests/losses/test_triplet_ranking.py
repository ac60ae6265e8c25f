import pytest
import torch

from dnnh.losses import DotProduct, SquaredL2, TripletRankingLoss

A = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
P = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # ||A-P||^2 = 1, A.P = 2
N = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # ||A-N||^2 = 2, A.N = 1


def test_squared_l2_hand_made_triplet():
    # max(0, 1 - 2 + m)
    assert TripletRankingLoss(margin=1.0)(A, P, N).item() == pytest.approx(0.0)
    assert TripletRankingLoss(margin=2.0)(A, P, N).item() == pytest.approx(1.0)
    # swapping positive and negative: max(0, 2 - 1 + 1) = 2
    assert TripletRankingLoss(margin=1.0)(A, N, P).item() == pytest.approx(2.0)


def test_dot_product_form_of_the_seed():
    # max(0, m - (A.P - A.N)) = max(0, 3 - (2 - 1)) = 2
    assert TripletRankingLoss(margin=3.0, distance="dot")(A, P, N).item() == pytest.approx(2.0)
    assert TripletRankingLoss(margin=1.0, distance=DotProduct())(A, N, P).item() == pytest.approx(2.0)


def test_smooth_loss_is_softplus_of_the_same_gap():
    import math

    # gap d(a,p) - d(a,n) = 1 - 2 = -1: log(1 + e^(-1 + m))
    assert TripletRankingLoss(margin=0.0, smooth=True)(A, P, N).item() == pytest.approx(math.log1p(math.exp(-1.0)))
    assert TripletRankingLoss(margin=1.0, smooth=True)(A, P, N).item() == pytest.approx(math.log(2.0))
    # where the hinge is zero the smooth loss still pushes the negative away
    x = torch.cat([A, P, N]).requires_grad_(True)
    TripletRankingLoss(margin=0.0, smooth=True)(x[:1], x[1:2], x[2:]).backward()
    assert x.grad.abs().sum() > 0
    # every triplet is active, so "active" and "mean" agree
    a, p, n = torch.cat([A, A]), torch.cat([P, N]), torch.cat([N, P])
    assert TripletRankingLoss(1.0, reduction="active", smooth=True)(a, p, n).item() == \
        pytest.approx(TripletRankingLoss(1.0, smooth=True)(a, p, n).item())


def test_mean_over_triplets_and_active_reduction():
    a, p, n = torch.cat([A, A]), torch.cat([P, N]), torch.cat([N, P])
    # per-triplet losses with m=1: [0, 2]
    assert TripletRankingLoss(1.0)(a, p, n).item() == pytest.approx(1.0)
    assert TripletRankingLoss(1.0, reduction="active")(a, p, n).item() == pytest.approx(2.0)


def test_from_matrix_equals_forward_on_gathered_rows():
    torch.manual_seed(0)
    x = torch.rand(7, 12)
    a, p, n = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 0]), torch.tensor([6, 0, 1, 2])
    for dist in (SquaredL2(), DotProduct()):
        loss = TripletRankingLoss(1.5, distance=dist)
        assert loss.from_matrix(dist.matrix(x), a, p, n).item() == pytest.approx(loss(x[a], x[p], x[n]).item(), abs=1e-5)


def test_no_triplet_gives_zero_that_backpropagates():
    x = torch.rand(3, 4, requires_grad=True)
    loss = TripletRankingLoss()
    empty = torch.empty(0, dtype=torch.long)
    value = loss.from_matrix(loss.distance.matrix(x), empty, empty, empty)
    value.backward()
    assert value.item() == 0.0 and x.grad is not None
    assert loss(x[:0], x[:0], x[:0]).item() == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="margin"):
        TripletRankingLoss(-1)
    with pytest.raises(ValueError, match="distance"):
        TripletRankingLoss(1, distance="cosine")
    with pytest.raises(ValueError, match="one shape"):
        TripletRankingLoss()(A, P, torch.zeros(1, 3))
