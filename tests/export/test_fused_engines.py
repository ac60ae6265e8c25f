"""The torch engines on the inference copy: the eval-mode model's codes, the model itself untouched,
the copy remade when training changes the weights, CPU forward batches cut and joined in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dnnh.encoder.backends import CPU_FORWARD_BATCH, OnnxRuntimeBackend, TorchBackend, TorchBf16Backend
from dnnh.nn import DNNH

MARGIN = 1e-4


def _model(**kwargs) -> DNNH:
    torch.manual_seed(0)
    model = DNNH(12, batchnorm=True, **kwargs)
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def _decided(model: DNNH, x: torch.Tensor) -> torch.Tensor:
    """The images of ``x`` whose eval-mode outputs all lie farther than MARGIN from 0.5."""
    model.eval()
    with torch.no_grad():
        keep = ((model(x) - 0.5).abs() > MARGIN).all(dim=1)
    return x[keep]


def test_torch_engine_gives_the_eval_models_codes_and_leaves_it_training():
    model = _model(separate_query_network=True)
    x = _decided(model, torch.randn(3 * CPU_FORWARD_BATCH + 5, 3, 32, 32))
    assert len(x) > CPU_FORWARD_BATCH  # more than one forward batch, the last one short
    want = {role: model.encode(x, role=role).numpy() for role in ("database", "query")}
    model.train()
    backend = TorchBackend(model)
    for role, codes in want.items():
        got = backend.bits(x, role)
        assert got.dtype == np.uint8 and np.array_equal(got, codes)
        assert np.array_equal(backend.outputs(x, role) > 0.5, codes.astype(bool))
    assert model.training  # encoding did not put the trained model in eval mode
    with torch.no_grad():
        model.eval()
        assert np.allclose(backend.features(x[:7]), model.net.backbone(x[:7]).numpy(), atol=1e-4)


def test_the_copy_follows_the_weights_while_training():
    model = _model().eval()
    backend = TorchBackend(model)
    x = torch.randn(40, 3, 32, 32)
    first = backend.bits(x, "database")
    copy = backend.inference_model()
    assert backend.inference_model() is copy  # not remade while nothing changed
    with torch.no_grad():  # an optimizer step: weights changed in place
        head = model.net.head
        head.bias.copy_(-head.bias - 5.0)
    assert backend.inference_model() is not copy
    after = backend.bits(x, "database")
    assert np.array_equal(after, model.encode(x).numpy()) and not np.array_equal(after, first)


def test_bf16_engine_casts_a_copy_and_stays_close():
    model = _model().eval()
    backend = TorchBf16Backend(model, device="cpu")  # emulated where the CPU lacks bf16: slow, still bf16
    x = torch.randn(24, 3, 32, 32)
    bits = backend.bits(x, "database")
    assert (bits == model.encode(x).numpy()).mean() >= 0.9
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the model itself stays fp32
    assert all(p.dtype == torch.bfloat16 for p in backend.inference_model().net.backbone.parameters())
    assert backend.features(x[:3]).dtype == np.float32



def test_onnxruntime_runs_a_pretrained_backbones_projection_and_gray_repeat():
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = DNNH(12, backbone="resnet18", in_channels=1).eval()  # divide-and-encode: a projection first
    x = torch.randn(5, 1, 32, 32)
    onnx = OnnxRuntimeBackend(model, 32, 1)
    torch_engine = TorchBackend(model)
    with torch.no_grad():
        assert np.allclose(onnx.outputs(x, "database"), model(x).numpy(), atol=1e-4)
    assert np.allclose(onnx.features(x), torch_engine.features(x), atol=1e-4)
    assert onnx.features(x).shape == (5, 512)
