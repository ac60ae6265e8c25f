"""The ONNX graphs of a run: the deployable image-to-codes model, and the float network the engines run.

``dnnh export`` (:func:`export_onnx`) writes ONE self-contained file (weights inside):

* input ``images``: uint8 ``[N, H, W, C]``, N dynamic, H = W = the run's input size and C its
  channels. The graph does **not** resize: give it images already at the run's input size
  (onnxruntime refuses other shapes with "Got invalid dimensions for input: images").
* inside: the run's preprocessing as :class:`~dnnh.data.pipeline.Preprocessing` does it (cast to
  float, divide by 255, subtract the per-channel mean, divide by the per-channel std), then the
  network of the chosen role (``database``, or ``query`` for a separate query network).
* outputs ``bits``: uint8 ``[N, nbits]``, bit k = output k > 0.5 (docs/METHOD.md §6), and
  ``codes``: uint8 ``[N, ceil(nbits / 8)]``, bit k in byte k // 8 at position k % 8 from the
  least significant bit: FAISS's order, the bytes :func:`dnnh.codes.pack_bits` makes. The packing
  is in the graph: the bits are padded with zeros to a multiple of 8, reshaped to
  ``[N, bytes, 8]``, multiplied by ``[1, 2, 4, ..., 128]`` and summed.
* metadata props: ``nbits``, ``code_bytes``, ``input_size``, ``channels``, ``input_layout``,
  ``role``, ``mean``, ``std``, ``dnnh_version``, ``run_config`` (the run's config.json),
  ``bit_order``.

The graphs come from torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``),
which writes plain ONNX with the weights as initializers and needs nothing but onnx.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnnh.codes.packing import code_bytes

ONNX_MISSING = "dnnh export needs onnx and onnxruntime: pip install 'dnnh[onnx]'"
#: Opset 17 is read by every onnxruntime since 1.11 and by the mobile runtimes; --opset changes it.
DEFAULT_OPSET = 17
ROLES = ("query", "database")
PROTOBUF_LIMIT = 2**31 - 1


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a one-line ImportError that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
    return onnx, onnxruntime


class _Normalise(nn.Module):
    """uint8 NHWC images -> the float NCHW tensor Preprocessing makes (same ops, same order)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return (x - self.mean) / self.std


class _ImagesToCodes(nn.Module):
    def __init__(self, net: nn.Module, mean: list[float], std: list[float], nbits: int) -> None:
        super().__init__()
        self.normalise, self.net, self.nbits = _Normalise(mean, std), net, int(nbits)
        self.nbytes = code_bytes(nbits)
        self.register_buffer("weights", torch.tensor([1 << i for i in range(8)], dtype=torch.int32))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.normalise(images))
        bits = (out > 0.5).to(torch.uint8)
        padded = bits.to(torch.int32)
        if self.nbytes * 8 != self.nbits:
            padded = nn.functional.pad(padded, (0, self.nbytes * 8 - self.nbits))
        codes = (padded.reshape(-1, self.nbytes, 8) * self.weights).sum(dim=2).to(torch.uint8)
        return bits, codes


class _FeaturesAndOutputs(nn.Module):
    """Preprocessed float images -> (backbone features, outputs in [0, 1]): what the engines run."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.backbone(x)
        return features, self.net.head(features)


def _export(module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str], opset: int):
    """``module`` traced on ``example`` into an ONNX ModelProto with a dynamic first axis."""
    onnx, _ = require_onnx()
    buf = io.BytesIO()
    module = module.eval()
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice and tracer chatter
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "N"} for name in inputs + outputs},
                          opset_version=int(opset), do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    _inline_shared_initializers(model)
    return model


def _inline_shared_initializers(model) -> None:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer under the node's output name.

    The exporter shares bit-identical weights (the all-zero biases of an untrained network) through
    Identity nodes; onnxruntime's quantiser wants every Conv bias to be an initializer.
    """
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = type(inits[node.input[0]])()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)


def network_of(model, role: str) -> nn.Module:
    """The :class:`~dnnh.nn.dnnh.HashNetwork` that encodes ``role`` (the query copy where there is one)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return model.query_net if (role == "query" and model.query_net is not None) else model.net


def float_graph(net: nn.Module, input_size: int, channels: int, opset: int = DEFAULT_OPSET):
    """The network on preprocessed float32 ``input`` [N, C, S, S] -> ``features``, ``outputs`` (ModelProto)."""
    example = torch.zeros(2, int(channels), int(input_size), int(input_size))
    return _export(_FeaturesAndOutputs(net), example, ["input"], ["features", "outputs"], opset)


def image_graph(net: nn.Module, prep, nbits: int, opset: int = DEFAULT_OPSET):
    """uint8 ``images`` [N, S, S, C] -> ``bits`` [N, nbits], ``codes`` [N, ceil(nbits/8)] (ModelProto)."""
    example = torch.zeros(2, prep.input_size, prep.input_size, prep.channels, dtype=torch.uint8)
    module = _ImagesToCodes(net, list(prep.mean), list(prep.std), nbits)
    return _export(module, example, ["images"], ["bits", "codes"], opset)


def _is_onnx_model(path: Path) -> bool:
    onnx, _ = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError, a truncated file, anything that is not a model
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def _check_target(out: Path, force: bool) -> None:
    if out.is_dir():
        raise ValueError(f"--out must be a file path, {out} is a directory")
    if out.exists() and not force and not _is_onnx_model(out):
        raise ValueError(f"{out} exists and is not an ONNX model; refusing to overwrite it (use --force)")


def export_onnx(run, out: str | Path, *, role: str = "database", opset: int = DEFAULT_OPSET,
                force: bool = False) -> dict[str, Any]:
    """Write the run's ``role`` network as one ONNX file at ``out`` (see the module docstring).

    ``run``: a :class:`~dnnh.runs.Run` or its folder. An existing ONNX file at ``out`` is
    replaced (atomically); any other file only with ``force``. Returns what was written: path,
    bytes, nbits, code_bytes, input_size, channels, role, opset.
    """
    import dnnh
    from dnnh.atomic import atomic_write_bytes
    from dnnh.runs import CONFIG, Run

    onnx, _ = require_onnx()
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    run = run if isinstance(run, Run) else Run.open(run)
    out = Path(out)
    _check_target(out, force)
    model = run.load_model()
    proto = image_graph(network_of(model, role), run.prep, model.nbits, opset)
    config = json.loads((run.path / CONFIG).read_text())
    props = {
        "nbits": str(model.nbits), "code_bytes": str(code_bytes(model.nbits)),
        "input_size": str(run.prep.input_size), "channels": str(run.prep.channels),
        "input_layout": (f"uint8 [N, {run.prep.input_size}, {run.prep.input_size}, {run.prep.channels}] (NHWC); "
                         "images must already be at the input size: the graph does not resize"),
        "role": role, "separate_query_network": str(model.query_net is not None).lower(),
        "mean": json.dumps(list(run.prep.mean)), "std": json.dumps(list(run.prep.std)),
        "dnnh_version": dnnh.__version__, "run_config": json.dumps(config, sort_keys=True),
        "bit_order": "bit k of a code is bit k % 8 (from the least significant) of byte k // 8 (FAISS)",
    }
    onnx.helper.set_model_props(proto, props)
    proto.producer_name, proto.producer_version = "dnnh", dnnh.__version__
    proto.doc_string = (f"DNNH {model.nbits}-bit {role} encoder of run {run.path.name}: uint8 images -> "
                        "bits (0/1) and codes (packed, FAISS order)")
    if proto.ByteSize() > PROTOBUF_LIMIT:
        raise ValueError(f"the model is {proto.ByteSize():,} bytes, over protobuf's 2 GB limit for one ONNX file")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    atomic_write_bytes(out, data)
    return {"path": str(out), "bytes": len(data), "nbits": model.nbits, "code_bytes": code_bytes(model.nbits),
            "input_size": run.prep.input_size, "channels": run.prep.channels, "role": role, "opset": int(opset)}


def read_metadata(model_or_path) -> dict[str, str]:
    """The metadata props of an ONNX model (a ModelProto or a file path) as a dict."""
    onnx, _ = require_onnx()
    model = model_or_path if hasattr(model_or_path, "metadata_props") else onnx.load(str(model_or_path))
    return {p.key: p.value for p in model.metadata_props}

