"""The deployable ONNX file of a run: raw images in, bits and packed codes out.

``dnnh export`` (:func:`export_onnx`) writes ONE self-contained file (weights inside):

* input ``images``: uint8 ``[N, H, W, C]``, N dynamic, H = W = the run's input size and C its
  channels. The graph does **not** resize: give it images already at the run's input size
  (onnxruntime refuses other shapes with "Got invalid dimensions for input: images"). A run of
  the 224 px pipeline (``resize`` in its preprocessing, the pretrained backbones) takes images
  at the resize side (256) instead and cuts the centre crop (224) inside the graph. Images are
  upright: dnnh applies a file's EXIF orientation when it decodes it (a phone's portrait photo is
  stored sideways with a tag), so do the same before the graph (``PIL.ImageOps.exif_transpose``).
* inside: the run's preprocessing as :class:`~dnnh.data.pipeline.Preprocessing` does it (cast to
  float, divide by 255, the centre crop when there is one, subtract the per-channel mean,
  divide by the per-channel std), then the
  network of the chosen role (``database``, or ``query`` for a separate query network).
* outputs ``bits``: uint8 ``[N, nbits]``, bit k = output k > 0.5 (docs/METHOD.md §6), and
  ``codes``: uint8 ``[N, ceil(nbits / 8)]``, bit k in byte k // 8 at position k % 8 from the
  least significant bit: FAISS's order, the bytes :func:`dnnh.codes.pack_bits` makes. The packing
  is in the graph: the bits are padded with zeros to a multiple of 8, reshaped to
  ``[N, bytes, 8]``, multiplied by ``[1, 2, 4, ..., 128]`` and summed.
* metadata props: ``nbits``, ``code_bytes``, ``input_size``, ``channels``, ``input_layout``,
  ``crop`` (the centre crop's side, or the input size), ``role``, ``mean``, ``std``,
  ``dnnh_version``, ``run_config`` (the run's config.json),
  ``bit_order``.

The graph is traced by :func:`dnnh.encoder.onnx.trace`, the tracer the onnxruntime engines use for
the float network they run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnnh.codes.packing import code_bytes
from dnnh.encoder.onnx import DEFAULT_OPSET, ROLES, network_of, require_onnx, trace

PROTOBUF_LIMIT = 2**31 - 1


class _Normalise(nn.Module):
    """uint8 NHWC images -> the float NCHW tensor Preprocessing makes (same ops, same order)."""

    def __init__(self, mean: list[float], std: list[float], crop: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.crop = crop  # (top, side) of the centre crop, or None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        if self.crop is not None:
            top, side = self.crop
            x = x[:, :, top:top + side, top:top + side]
        return (x - self.mean) / self.std


class _ImagesToCodes(nn.Module):
    def __init__(self, net: nn.Module, mean: list[float], std: list[float], nbits: int,
                 crop: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.normalise, self.net, self.nbits = _Normalise(mean, std, crop), net, int(nbits)
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


def image_graph(net: nn.Module, prep, nbits: int, opset: int = DEFAULT_OPSET):
    """uint8 ``images`` [N, S, S, C] -> ``bits`` [N, nbits], ``codes`` [N, ceil(nbits/8)] (ModelProto)."""
    side = getattr(prep, "load_size", prep.input_size)
    crop = ((side - prep.input_size) // 2, prep.input_size) if side > prep.input_size else None
    example = torch.zeros(2, side, side, prep.channels, dtype=torch.uint8)
    module = _ImagesToCodes(net, list(prep.mean), list(prep.std), nbits, crop)
    return trace(module, example, ["images"], ["bits", "codes"], opset)


def _is_onnx_model(path: Path) -> bool:
    onnx, _ = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError, a truncated file, anything that is not a model
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def run_folder_of(path: Path, run_path: Path | None = None) -> Path | None:
    """The run directory ``path`` lies in (``run_path``, or any folder above it holding a run's
    config.json and its weights or split), or None."""
    from dnnh.runs import BEST_WEIGHTS, CONFIG, SPLIT

    path = path.absolute()
    for folder in path.parents:
        if (run_path is not None and folder == run_path.absolute()) or (
                (folder / CONFIG).is_file() and ((folder / BEST_WEIGHTS).exists() or (folder / SPLIT).exists())):
            return folder
    return None


def _check_target(out: Path, force: bool, run_path: Path | None = None) -> None:
    if out.is_dir():
        raise ValueError(f"--out must be a file path, {out} is a directory")
    if not out.exists() or _is_onnx_model(out):
        return
    folder = run_folder_of(out, run_path)
    if folder is not None:  # the run's weights, config, split, codes...: never replaced, --force or not
        raise ValueError(f"{out} is a file of the run {folder}; dnnh export never replaces a run's files, "
                         "even with --force: choose another --out")
    if not force:
        raise ValueError(f"{out} exists and is not an ONNX model; refusing to overwrite it (use --force)")


def check_opset(opset: object) -> int:
    """``opset`` if the exporter can write it: an integer from torch's lowest to the TorchScript
    exporter's highest (7..20 with torch 2.x); one line otherwise."""
    from torch.onnx import _constants

    low = 11  # below 11 the graph's ops (pad, integer casts) have no ONNX form
    high = int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise ValueError(f"--opset must be an integer from {low} to {high} (this torch's exporter), got {opset!r}")
    return opset


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
    opset = check_opset(opset)
    run = run if isinstance(run, Run) else Run.open(run)
    out = Path(out)
    _check_target(out, force, run.path)
    model = run.load_model()
    proto = image_graph(network_of(model, role), run.prep, model.nbits, opset)
    side = run.prep.load_size
    config = json.loads((run.path / CONFIG).read_text())
    props = {
        "nbits": str(model.nbits), "code_bytes": str(code_bytes(model.nbits)),
        "input_size": str(side), "crop": str(run.prep.input_size), "channels": str(run.prep.channels),
        "input_layout": (f"uint8 [N, {side}, {side}, {run.prep.channels}] (NHWC); "
                         "upright (EXIF orientation applied, as dnnh decodes files); "
                         "images must already be at the input size: the graph does not resize"
                         + (f" (it takes the centre {run.prep.input_size}x{run.prep.input_size} crop)"
                            if side > run.prep.input_size else "")),
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
            "input_size": side, "channels": run.prep.channels, "role": role, "opset": int(opset)}


def read_metadata(model_or_path) -> dict[str, str]:
    """The metadata props of an ONNX model (a ModelProto or a file path) as a dict."""
    onnx, _ = require_onnx()
    model = model_or_path if hasattr(model_or_path, "metadata_props") else onnx.load(str(model_or_path))
    return {p.key: p.value for p in model.metadata_props}

