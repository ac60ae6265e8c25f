"""The inference copy (dnnh.nn.fuse): the eval-mode model's function, the model itself untouched.

Batch norms carry made-up running statistics (far from the identity map a fresh one is), so a
fold that used the wrong statistics, axis or conv would show in the outputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnh.nn import DNNH, build_backbone
from dnnh.nn.fuse import CastInput, folded_pairs, fuse_for_inference

TOLERANCE = 1e-4  # fp32 rounding of the fold, relative to the outputs' scale
MARGIN = 1e-4  # codes are compared on images whose outputs all lie farther than this from 0.5


def _random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


def _close(want: torch.Tensor, got: torch.Tensor) -> bool:
    return bool((want - got).abs().max() <= TOLERANCE * (1 + want.abs().max()))


def _model(backbone: str, **kwargs) -> DNNH:
    torch.manual_seed(0)
    return _random_statistics(DNNH(12, backbone=backbone, **kwargs)).eval()


@pytest.mark.parametrize("backbone,kwargs,folds", [
    ("nin-small", {}, 0),
    ("nin-cifar", {}, 0),
    ("nin-small", {"batchnorm": True}, 7),  # every conv but the last has one
    ("nin-small", {"batchnorm": True, "encoder": "fc", "code_norm": True, "separate_query_network": True}, 16),
])
def test_fused_nin_computes_the_eval_model(backbone, kwargs, folds):
    model = _model(backbone, **kwargs)
    fused = fuse_for_inference(model)
    assert len(folded_pairs(model)) == folds
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in fused.modules())
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        for role in ("database", "query"):
            assert _close(model.logits(x, role=role), fused.logits(x.contiguous(memory_format=torch.channels_last),
                                                                 role=role))


def test_codes_identical_away_from_the_threshold():
    model = _model("nin-small", batchnorm=True)
    fused = fuse_for_inference(model)
    torch.manual_seed(1)
    x = torch.randn(400, 3, 32, 32)
    with torch.no_grad():
        keep = ((model(x) - 0.5).abs() > MARGIN).all(dim=1)
    assert keep.sum() >= 100  # enough images without a near-tie to compare on
    x = x[keep]
    assert torch.equal(model.encode(x), fused.encode(x.contiguous(memory_format=torch.channels_last)))


def test_the_trained_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = _random_statistics(DNNH(12, batchnorm=True, separate_query_network=True)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layout = [p.is_contiguous() for p in model.parameters()]
    fused = fuse_for_inference(model, dtype=torch.bfloat16)
    assert model.training and not fused.training
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) and v.dtype == before[k].dtype for k, v in model.state_dict().items())
    assert [p.is_contiguous() for p in model.parameters()] == layout  # not made channels-last
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 14
    assert all(p.requires_grad for p in model.parameters())
    assert not any(p.requires_grad for p in fused.parameters())


def test_resnet18_folds_every_batch_norm_and_computes_the_same():
    torch.manual_seed(0)
    net = _random_statistics(build_backbone("resnet18")).eval()
    example = torch.zeros(2, 3, 32, 32)
    assert len(folded_pairs(net, example)) == 20  # the stem, 2 x 8 in the blocks, 3 downsamples
    assert len(folded_pairs(net)) == 3  # without an example: the downsamples' Sequentials only
    fused = fuse_for_inference(net, example)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        assert _close(net(x), fused(x.contiguous(memory_format=torch.channels_last)))


def test_dnnh_on_resnet18_traces_itself():
    model = _model("resnet18", encoder="fc", code_norm=True)
    assert len(folded_pairs(model)) == 21  # the backbone's 20 and the head's Linear + BatchNorm1d
    fused = fuse_for_inference(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert _close(model.logits(x), fused.logits(x))


class _SkipReadsConv(nn.Module):
    """A BatchNorm after a conv whose raw output is also added back: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_a_conv_output_read_elsewhere_is_not_folded():
    module = _random_statistics(_SkipReadsConv()).eval()
    example = torch.randn(2, 3, 8, 8)
    assert folded_pairs(module, example) == {}
    fused = fuse_for_inference(module, example)
    assert isinstance(fused.bn, nn.BatchNorm2d)
    with torch.no_grad():
        assert _close(module(example), fused(example))


def test_batch_norm_without_running_statistics_is_left_alone():
    seq = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))
    assert folded_pairs(seq) == {}
    assert isinstance(fuse_for_inference(seq)[1], nn.BatchNorm2d)


def test_bf16_casts_the_backbone_once_and_keeps_the_head_fp32():
    model = _model("nin-small", batchnorm=True)
    fused = fuse_for_inference(model, dtype=torch.bfloat16)
    assert isinstance(fused.net.backbone, CastInput)
    assert all(p.dtype == torch.bfloat16 for p in fused.net.backbone.parameters())
    assert all(p.dtype == torch.float32 for p in fused.net.head.parameters())
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        out = fused(x.contiguous(memory_format=torch.channels_last))
        assert out.dtype == torch.float32
        assert (out - model(x)).abs().max() < 0.1  # bf16's 8-bit mantissa, not a different function


def test_a_backbone_compiled_in_place_is_copied_eager():
    model = _model("nin-small")
    model.net.backbone.compile()  # lazy: nothing compiles until called
    fused = fuse_for_inference(model)
    assert model.net.backbone._compiled_call_impl is not None
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in fused.modules())
