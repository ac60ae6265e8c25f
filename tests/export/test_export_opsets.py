"""Issue 36.6: every opset ``--opset`` promises (11 to the exporter's highest) exports and runs.

Before: opset 11 failed on every run ("Exporting the operator 'aten::einsum' to ONNX opset version 11
is not supported"): divide-and-encode's per-slice products were an einsum, which ONNX has from
opset 12. They are now a batched MatMul, which every opset has; the codes at both ends of the range
equal torch's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from dnnh.cli.main import main  # noqa: E402
from dnnh.export import export_onnx  # noqa: E402
from dnnh.export.graph import check_opset  # noqa: E402
from dnnh.nn import DivideAndEncode  # noqa: E402

LOWEST = 11


def _highest() -> int:
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))


@pytest.mark.parametrize("opset", [LOWEST, _highest()])
@pytest.mark.parametrize("channels,bits", [(1, 12), (3, 48)])
def test_both_ends_of_the_opset_range_export_and_match_torch(tiny_run, tmp_path, capsys, opset, channels, bits):
    run, dataset = tiny_run(channels, bits)
    assert check_opset(opset) == opset  # the range the CLI promises includes it
    path = tmp_path / f"m{opset}.onnx"
    assert main(["export", "--run", str(run.path), "--out", str(path), "--opset", str(opset)]) == 0
    assert f"(opset {opset})" in capsys.readouterr().out
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    assert "Einsum" not in {node.op_type for node in model.graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_bits, got_codes = session.run(None, {"images": dataset.images})
    net = run.load_model()
    with torch.no_grad():
        outputs = net(run.prep(dataset.images), role="database").numpy()
    differ = got_bits != (outputs > 0.5)
    assert not (differ & (np.abs(outputs - 0.5) > 1e-6)).any()  # only exact ties may round either way
    assert got_codes.shape == (len(dataset.images), (bits + 7) // 8)


def test_the_query_role_exports_at_opset_11_too(tiny_run, tmp_path):
    run, dataset = tiny_run(1, 12)
    done = export_onnx(run, tmp_path / "q.onnx", role="query", opset=LOWEST)
    assert done["opset"] == LOWEST


def test_divide_and_encode_logits_equal_the_einsum_they_replace():
    """The batched product gives what ``einsum('nks,ks->nk')`` gave, forward and gradient."""
    torch.manual_seed(0)
    head = DivideAndEncode(48 * 50, 48, eps=None)
    features = torch.randn(33, 48 * 50, requires_grad=True)
    got = head.logits(features)
    slices = features.reshape(33, 48, 50)
    want = torch.einsum("nks,ks->nk", slices, head.weight) + head.bias
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    (g_got,) = torch.autograd.grad(got.sum(), features)
    (g_want,) = torch.autograd.grad(want.sum(), features)
    torch.testing.assert_close(g_got, g_want)


@pytest.mark.parametrize("layout", ["timm", "torchvision"])
@pytest.mark.parametrize("opset", [LOWEST, _highest()])
def test_vit_attention_traces_at_both_ends(layout, opset):
    """Before: a ViT backbone failed below opset 14 (scaled_dot_product_attention; torchvision's
    MultiheadAttention: unflatten, from 13). While tracing, attention is MatMul and Softmax."""
    from dnnh.encoder.onnx import trace
    from dnnh.nn.backbones.vit import TimmViT, TorchvisionViT

    torch.manual_seed(0)
    net = (TimmViT if layout == "timm" else TorchvisionViT)(32, 1, 2).eval()  # 224 px: no position resampling
    x = torch.randn(2, 3, 224, 224)
    model = trace(net, x, ["x"], ["y"], opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], want, rtol=1e-4, atol=1e-5)
