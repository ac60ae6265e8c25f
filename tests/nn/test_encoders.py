import pytest
import torch

from dnnh.nn import DivideAndEncode, FullyConnectedEncoder


@pytest.mark.parametrize("bits", [12, 24, 48])
def test_bit_k_depends_only_on_slice_k(bits):
    torch.manual_seed(0)
    head = DivideAndEncode(50 * bits, bits, eps=None)
    x = torch.randn(3, 50 * bits, requires_grad=True)
    out = head(x)
    for k in range(bits):
        (grad,) = torch.autograd.grad(out[:, k].sum(), x, retain_graph=True)
        inside = grad[:, 50 * k:50 * (k + 1)]
        outside = torch.cat([grad[:, :50 * k], grad[:, 50 * (k + 1):]], dim=1)
        assert torch.count_nonzero(outside) == 0
        assert torch.count_nonzero(inside) > 0


def test_matches_per_slice_linear_units():
    torch.manual_seed(1)
    head = DivideAndEncode(20, 4, eps=None)
    x = torch.randn(5, 20)
    manual = torch.stack([torch.sigmoid(x[:, 5 * k:5 * (k + 1)] @ head.weight[k] + head.bias[k]) for k in range(4)], 1)
    assert torch.allclose(head(x), manual, atol=1e-6)


def test_threshold_applied_after_sigmoid():
    head = DivideAndEncode(4, 2, eps=0.1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.0, 0.1]))
    x = torch.tensor([[3.0, 3.0, 9.0, 9.0]])
    # bit 0: sigmoid(6) > 0.6 -> 1; bit 1: sigmoid(0.1) = 0.525 inside the band -> kept
    out = head(x)
    assert out[0, 0].item() == 1.0
    assert out[0, 1].item() == pytest.approx(torch.sigmoid(torch.tensor(0.1)).item())


def test_fc_encoder_bits_see_all_features():
    torch.manual_seed(0)
    head = FullyConnectedEncoder(100, 2, eps=None)
    x = torch.randn(2, 100, requires_grad=True)
    (grad,) = torch.autograd.grad(head(x)[:, 0].sum(), x)
    assert torch.count_nonzero(grad[:, 50:]) > 0


def test_in_features_must_divide():
    with pytest.raises(ValueError, match="multiple of nbits"):
        DivideAndEncode(101, 2)
