import pytest
import torch

from dnnh.nn import PiecewiseThreshold


def test_values_below_inside_above_band():
    g = PiecewiseThreshold(eps=0.1)
    s = torch.tensor([0.0, 0.39, 0.4, 0.45, 0.5, 0.6, 0.61, 1.0])
    # below 0.4 -> 0; [0.4, 0.6] -> s; above 0.6 -> 1
    expected = torch.tensor([0.0, 0.0, 0.4, 0.45, 0.5, 0.6, 1.0, 1.0])
    assert torch.equal(g(s), expected)


def test_gradient_is_one_inside_band_zero_outside():
    g = PiecewiseThreshold(eps=0.2)
    s = torch.tensor([0.1, 0.29, 0.3, 0.5, 0.7, 0.71, 0.9], requires_grad=True)
    g(s).sum().backward()
    assert s.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_eps_half_is_identity_on_unit_interval():
    s = torch.rand(100)
    assert torch.equal(PiecewiseThreshold(0.5)(s), s)


@pytest.mark.parametrize("eps", [-0.1, 0.6])
def test_eps_out_of_range_rejected(eps):
    with pytest.raises(ValueError, match="eps"):
        PiecewiseThreshold(eps)
