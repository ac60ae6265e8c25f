"""Encoding engines other than fp32 torch, each a backend of :class:`dnnh.encoder.Encoder`.

Every backend has the :class:`~dnnh.encoder.TorchBackend` contract: ``name``, ``nbits``,
``bits(batch, role)`` -> uint8 (n, nbits) and ``features(batch)``, on preprocessed float32
batches (n, C, H, W); they also have ``outputs(batch, role)``, the float outputs in [0, 1].

* ``torch-bf16``: the torch model under ``torch.autocast`` in bfloat16, on CUDA when there is
  one, else on a CPU with AMX or AVX512-BF16 (``amx_bf16`` / ``avx512_bf16`` in /proc/cpuinfo);
  refused elsewhere, where bf16 is emulated and slower than fp32. Codes may differ from fp32's
  on bits whose output is near 0.5.
* ``onnxruntime``: the run's network exported to ONNX in memory when the encoder is built (a
  second graph for a separate query network) and run by onnxruntime's CPU provider in fp32 with
  ``torch.get_num_threads()`` threads. Same arithmetic as torch up to summation order: bits differ
  only where an output lies within ~1e-6 of 0.5.
* ``onnxruntime-int8``: that graph statically quantised by ``onnxruntime.quantization``
  (QDQ, int8 weights per channel, uint8 activations, MinMax ranges) calibrated on up to
  :data:`CALIBRATION_IMAGES` of the run's training images. Only the backbone's convolutions,
  ReLUs and pools are quantised (:data:`INT8_OPS`); the global pool and the hash head stay fp32
  (quantising the 50q features too flipped 0.6% more bits on a tiny digits run). Before
  quantising, the ceil-mode average pools get ``count_include_pad=0`` (the same arithmetic when
  there is no explicit padding, as fp32 onnxruntime confirms): onnxruntime's fused
  QLinearAveragePool otherwise divides a window that hangs off the edge by the full kernel size,
  unlike torch, which broke the features of 8x8 inputs. Faster; codes are not identical to fp32's,
  so it is opt-in and the benchmark reports its MAP.

``auto`` (:func:`choose_auto`) takes the engines of :data:`AUTO_ORDER`, fastest first as
measured by ``benchmarks/encode_engines.py`` on this project's machine kind (AMD EPYC, 2 shared
cores, avx512_bf16 and avx512_vnni, no AMX; Fashion-MNIST, 48-bit nin-small, 69,000 database
images, against torch fp32 at 1 / 2 threads: onnxruntime 1.6x / 2.8x with every bit equal,
torch-bf16 2.1x / 2.1x with MAP -0.00104, onnxruntime-int8 3.9x / 5.4x with MAP +0.00130, so
onnxruntime is the fastest engine that meets the rule), and returns the
first one that is installed and whose bits equal fp32 torch's on an evenly spaced sample of
:data:`AUTO_SAMPLE` images of the run's database (both roles' networks), where a bit may differ
only if torch's output for it lies within :data:`AUTO_TOLERANCE` of 0.5 (a tie that summation
order decides). Anything else, or no database to check on, gives fp32 torch. Engines whose codes
are not identical (bf16, int8) are never chosen by ``auto``: the rule that would admit them, MAP
within 0.001 of torch's, needs the whole database and the queries encoded twice and scored,
which costs more than ``auto`` can save on one call; run them by name where the benchmark showed
their MAP is good enough.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dnnh.export.graph import DEFAULT_OPSET, ROLES, float_graph, network_of, require_onnx

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CALIBRATION_IMAGES = 256
INT8_OPS = ("Conv", "Relu", "MaxPool", "AveragePool")
AUTO_ORDER = ("onnxruntime",)
AUTO_SAMPLE = 256
AUTO_TOLERANCE = 1e-5


# --- the CPU ------------------------------------------------------------------------------------

def cpu_info() -> dict[str, Any]:
    """The CPU's model name and flags from /proc/cpuinfo (empty where there is none)."""
    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": model, "flags": flags}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "flags": flags}


def bf16_device() -> str:
    """Where torch-bf16 runs ("cuda" or "cpu"), or a one-line ValueError where bf16 is not native."""
    if torch.cuda.is_available():
        return "cuda"
    info = cpu_info()
    if any(flag in info["flags"] for flag in BF16_FLAGS):
        return "cpu"
    raise ValueError(f"engine torch-bf16 needs CUDA or a CPU with AMX or AVX512-BF16 (flags {', '.join(BF16_FLAGS)}); "
                     f"{info['model']} has neither: use --engine torch or onnxruntime")


# --- backends ----------------------------------------------------------------------------------

class TorchBf16Backend:
    """The torch model under bfloat16 autocast (see the module docstring)."""

    name = "torch-bf16"

    def __init__(self, model, device: str | None = None) -> None:
        self.device = device or bf16_device()
        self.model = model.to(self.device).eval()
        self.nbits = model.nbits

    @torch.no_grad()
    def outputs(self, batch: torch.Tensor, role: str) -> np.ndarray:
        with torch.autocast(self.device, dtype=torch.bfloat16):
            return self.model(batch.to(self.device), role=role).float().cpu().numpy()

    def bits(self, batch: torch.Tensor, role: str) -> np.ndarray:
        return (self.outputs(batch, role) > 0.5).astype(np.uint8)

    @torch.no_grad()
    def features(self, batch: torch.Tensor) -> np.ndarray:
        with torch.autocast(self.device, dtype=torch.bfloat16):
            return self.model.net.backbone(batch.to(self.device)).float().cpu().numpy()


class OnnxRuntimeBackend:
    """The network exported to ONNX in memory, run by onnxruntime in fp32 (see the module docstring)."""

    name = "onnxruntime"

    def __init__(self, model, input_size: int, channels: int, *, threads: int | None = None,
                 opset: int = DEFAULT_OPSET) -> None:
        _, ort = require_onnx()
        self.nbits = model.nbits
        self.threads = int(threads or torch.get_num_threads())
        roles = ROLES if model.query_net is not None else ("database",)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.log_severity_level = 3  # errors only: no warnings about unused initializers
        self.sessions = {}
        for role in roles:
            graph = self._prepare(float_graph(network_of(model, role), input_size, channels, opset))
            self.sessions[role] = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def _prepare(self, graph) -> bytes:
        return graph.SerializeToString()

    def _run(self, batch: torch.Tensor, role: str, output: str) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        session = self.sessions.get(role, self.sessions["database"])
        x = np.ascontiguousarray(batch.detach().cpu().float().numpy())
        return session.run([output], {"input": x})[0]

    def outputs(self, batch: torch.Tensor, role: str) -> np.ndarray:
        return self._run(batch, role, "outputs")

    def bits(self, batch: torch.Tensor, role: str) -> np.ndarray:
        return (self.outputs(batch, role) > 0.5).astype(np.uint8)

    def features(self, batch: torch.Tensor) -> np.ndarray:
        return self._run(batch, "database", "features")


class OnnxRuntimeInt8Backend(OnnxRuntimeBackend):
    """:class:`OnnxRuntimeBackend` on a statically quantised graph, calibrated on ``calibration``.

    ``calibration``: preprocessed float images (n, C, H, W), a few hundred of the training set.
    """

    name = "onnxruntime-int8"

    def __init__(self, model, input_size: int, channels: int, calibration: torch.Tensor | np.ndarray, *,
                 threads: int | None = None, opset: int = DEFAULT_OPSET) -> None:
        self.calibration = np.ascontiguousarray(np.asarray(calibration, dtype=np.float32))
        if len(self.calibration) == 0:
            raise ValueError("onnxruntime-int8 needs calibration images; got none")
        super().__init__(model, input_size, channels, threads=threads, opset=opset)

    def _prepare(self, graph) -> bytes:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        images = self.calibration

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"input": images[i:i + 64]} for i in range(0, len(images), 64)])

            def get_next(self):
                return next(self.batches, None)

        onnx, _ = require_onnx()
        _exclude_ceil_overhang(graph)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # the quantiser logs advice to the root logger
        try:
            with tempfile.TemporaryDirectory(prefix="dnnh-int8-") as tmp:
                src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                onnx.save(graph, str(src))
                quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(INT8_OPS))
                return dst.read_bytes()
        finally:
            logging.disable(previous)


def _exclude_ceil_overhang(graph) -> None:
    """``count_include_pad=0`` on average pools without explicit padding (see the module docstring)."""
    for node in graph.graph.node:
        if node.op_type != "AveragePool":
            continue
        attrs = {a.name: a for a in node.attribute}
        if "pads" in attrs and any(attrs["pads"].ints):
            continue
        if "count_include_pad" in attrs:
            attrs["count_include_pad"].i = 0


# --- from a run --------------------------------------------------------------------------------

def _evenly(indices: np.ndarray, limit: int) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) <= limit:
        return indices
    return indices[np.unique(np.linspace(0, len(indices) - 1, limit).round().astype(np.int64))]


def run_images(run, indices: np.ndarray, data: Any = None, limit: int = 256) -> torch.Tensor:
    """Preprocessed images of up to ``limit`` evenly spaced ``indices`` of the run's dataset (or ``data``)."""
    from dnnh.data.pipeline import BatchSource

    dataset = data if data is not None else run.load_dataset()
    idx = _evenly(indices, limit)
    if len(idx) == 0:
        raise ValueError("no images to draw from")
    return torch.cat(list(BatchSource(dataset, run.prep, num_workers=0).batches([idx])))


def _bf16(run, data: Any = None) -> TorchBf16Backend:
    return TorchBf16Backend(run.load_model())


def _onnxruntime(run, data: Any = None) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(run.load_model(), run.prep.input_size, run.prep.channels)


def _onnxruntime_int8(run, data: Any = None) -> OnnxRuntimeInt8Backend:
    require_onnx()
    try:
        calibration = run_images(run, run.split.train, data, CALIBRATION_IMAGES)
    except (FileNotFoundError, OSError) as exc:
        raise FileNotFoundError(f"onnxruntime-int8 calibrates on the run's training images, which cannot be "
                                f"loaded: {exc}") from None
    return OnnxRuntimeInt8Backend(run.load_model(), run.prep.input_size, run.prep.channels, calibration)


#: Engine name -> factory(run, data) of its backend (fp32 torch is in dnnh.encoder).
BACKENDS: dict[str, Callable[..., Any]] = {
    "torch-bf16": _bf16,
    "onnxruntime": _onnxruntime,
    "onnxruntime-int8": _onnxruntime_int8,
}


def disagreement(reference: np.ndarray, outputs: np.ndarray, tolerance: float = AUTO_TOLERANCE) -> tuple[int, int]:
    """(bits that differ, of those how many have a reference output farther than ``tolerance`` from 0.5)."""
    differ = (reference > 0.5) != (outputs > 0.5)
    return int(differ.sum()), int((np.abs(reference[differ] - 0.5) > tolerance).sum())


def choose_auto(run, fallback: Callable[[Any], Any], data: Any = None, sample: int = AUTO_SAMPLE) -> Any:
    """The backend ``auto`` picks for ``run`` (see the module docstring); its ``auto_reason`` says why.

    ``fallback(model)``: the fp32 torch backend (dnnh.encoder's TorchBackend, passed in so that
    this module does not import the encoder that imports it).
    """
    model = run.load_model()
    fallback = fallback(model)
    try:
        images = run_images(run, run.split.database, data, sample)
    except (FileNotFoundError, ValueError, OSError) as exc:
        fallback.auto_reason = f"auto chose torch: no database images to check other engines on ({exc})"
        return fallback
    roles = ROLES if model.query_net is not None else ("database",)
    with torch.no_grad():
        reference = {role: model(images, role=role).numpy() for role in roles}
    notes = []
    for name in AUTO_ORDER:
        try:
            backend = OnnxRuntimeBackend(model, run.prep.input_size, run.prep.channels) if name == "onnxruntime" \
                else BACKENDS[name](run, data)
        except (ImportError, ValueError) as exc:
            notes.append(f"{name}: {exc}")
            continue
        counts = [disagreement(reference[role], backend.outputs(images, role)) for role in roles]
        differ, far = sum(c[0] for c in counts), sum(c[1] for c in counts)
        if far == 0:
            ties = f", {differ} tied bits within {AUTO_TOLERANCE:g} of 0.5 differ" if differ else ""
            backend.auto_reason = (f"auto chose {name}: its codes equal torch fp32's on {len(images)} database "
                                   f"images{ties}")
            return backend
        notes.append(f"{name}: {far} bits differ from torch fp32 on {len(images)} database images")
    fallback.auto_reason = "auto chose torch" + (f" ({'; '.join(notes)})" if notes else "")
    return fallback
