"""The one registry of encoding engines: :data:`BACKENDS`, engine name -> the backend for a run.

A backend is the only part of :class:`dnnh.encoder.Encoder` that computes
(:class:`EncoderBackend`): ``name``, ``nbits``, ``bits(batch, role)`` -> uint8 (n, nbits) and
``features(batch)``, on preprocessed float32 batches (n, C, H, W); every one also has
``outputs(batch, role)``, the float outputs in [0, 1].

* ``torch`` (:class:`TorchBackend`): the model's eval-mode function in fp32, the default
  (:data:`dnnh.encoder.names.DEFAULT_ENGINE`), computed on its inference copy
  (:func:`dnnh.nn.fuse.fuse_for_inference`: batch norm folded into the convolutions, dropout
  gone, channels-last) under ``torch.inference_mode`` in batches of :data:`CPU_FORWARD_BATCH`
  on the CPU; its codes equal the eval-mode model's but for ties at 0.5.
* ``torch-bf16``: the same inference copy with the backbone's weights cast to bfloat16 once
  (the hash head stays fp32, as under training's autocast), on CUDA when there is one, else on
  a CPU with AMX or AVX512-BF16 (``amx_bf16`` / ``avx512_bf16`` in /proc/cpuinfo); refused
  elsewhere, where bf16 is emulated and slower than fp32. Codes may differ from fp32's on bits
  whose output is near 0.5.
* ``onnxruntime``: the run's network exported to ONNX in memory when the encoder is built (a
  second graph for a separate query network) and run by onnxruntime's CPU provider in fp32 with
  ``torch.get_num_threads()`` threads. Same arithmetic as torch up to summation order: bits differ
  only where an output lies within ~1e-6 of 0.5. It is exported from the model itself, not from
  the inference copy: the exporter already folds eval-mode batch norm into the convolutions and
  drops dropout (both graphs have the same nodes), and onnxruntime picks its own memory layout,
  so the copy would change nothing but the fold's rounding, and with it the bits of before.
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

``auto`` is not a backend but a choice between them: :mod:`dnnh.encoder.auto`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from dnnh import machine
from dnnh.encoder.names import ENGINES
from dnnh.encoder.onnx import DEFAULT_OPSET, ROLES, float_graph, network_of, require_onnx
from dnnh.nn import DNNH
from dnnh.nn.fuse import fuse_for_inference

CALIBRATION_IMAGES = 256
INT8_OPS = ("Conv", "Relu", "MaxPool", "AveragePool")


def bf16_device() -> str:
    """Where torch-bf16 runs ("cuda" or "cpu"), or a one-line ValueError where bf16 is not native."""
    if torch.cuda.is_available():
        return "cuda"
    if machine.bf16_is_fast():
        return "cpu"
    raise ValueError(f"engine torch-bf16 needs CUDA or a CPU with AMX or AVX512-BF16 (flags "
                     f"{', '.join(machine.NATIVE_BF16_FLAGS)}); {machine.cpu_model()} has neither: "
                     "use --engine torch or onnxruntime")


# --- backends ----------------------------------------------------------------------------------

class EncoderBackend(Protocol):
    """What computes codes from preprocessed batches (see the module docstring)."""

    name: str
    nbits: int

    def bits(self, batch: torch.Tensor, role: str) -> np.ndarray: ...

    def features(self, batch: torch.Tensor) -> np.ndarray: ...


#: Images a CPU forward computes at once: the fused nin-small encoded fastest at 64 of 64/256/1024
#: (2 threads, AMD EPYC; 1.4x 256's, 1.4x 1,024's), where a batch's activations still fit the L3
#: cache (32 channels x 32 x 32 fp32 = 128 KB an image). The Encoder's batches (512 on the CPU,
#: what bounds memory and preprocessing) are cut into these; on a GPU a batch runs whole.
CPU_FORWARD_BATCH = 64


def _state_key(model: torch.nn.Module) -> tuple:
    """Changes whenever a weight or buffer of ``model`` does (in place, by an optimizer step, or moved)."""
    key = []
    for tensor in (*model.parameters(), *model.buffers()):
        try:
            version = tensor._version
        except RuntimeError:  # an inference tensor keeps no version: its storage is all we can see
            version = -1
        key.append((tensor.data_ptr(), version))
    return tuple(key)


class _FusedTorch:
    """What both torch engines share: they compute on the model's inference copy
    (:func:`dnnh.nn.fuse.fuse_for_inference`: batch norm folded, no dropout, channels-last, the
    backbone's weights cast once to :attr:`dtype`) under ``torch.inference_mode``, on channels-last
    input, in forward batches of :data:`CPU_FORWARD_BATCH` on the CPU. The copy is made on first use
    and again whenever the model's weights or buffers change (the training loop validates through
    the same encoder while it trains): the trained model itself is never changed or put in eval
    mode by encoding."""

    dtype: torch.dtype | None = None
    model: DNNH
    device: torch.device | str

    def _setup(self, model: DNNH) -> None:
        self.model, self.nbits = model, model.nbits
        self._copy: DNNH | None = None
        self._key: tuple | None = None

    def inference_model(self) -> DNNH:
        """The fused inference copy of the model as it is now (remade when its weights changed)."""
        key = _state_key(self.model)
        if self._copy is None or key != self._key:
            self._copy = fuse_for_inference(self.model, dtype=self.dtype).to(self.device)
            self._key = key
        return self._copy

    def _forward(self, batch: torch.Tensor, compute: Callable[[DNNH, torch.Tensor], torch.Tensor]) -> np.ndarray:
        model = self.inference_model()
        step = CPU_FORWARD_BATCH if torch.device(self.device).type == "cpu" else max(len(batch), 1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(batch), step):
                x = batch[i:i + step].to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                out.append(compute(model, x).cpu())
        return (torch.cat(out) if len(out) != 1 else out[0]).numpy()

    def outputs(self, batch: torch.Tensor, role: str) -> np.ndarray:
        """The float outputs in [0, 1] (fp32 from the head, whatever the backbone's precision)."""
        return self._forward(batch, lambda model, x: model(x, role=role).float())

    def bits(self, batch: torch.Tensor, role: str) -> np.ndarray:
        """Bit k is 1 when output k > 0.5 (docs/METHOD.md §6), as uint8 (n, nbits)."""
        return self._forward(batch, lambda model, x: (model(x, role=role) > 0.5).to(torch.uint8))

    def to(self, device: torch.device | str) -> "_FusedTorch":
        """Compute on ``device`` from now on (the model moves there; its inference copy is made again)."""
        self.model.to(device)
        self.device = torch.device(device)
        self._copy = None
        return self

    def features(self, batch: torch.Tensor) -> np.ndarray:
        """What the backbone gives the hash layer (a pretrained one before its projection)."""
        def backbone(model: DNNH, x: torch.Tensor) -> torch.Tensor:
            return model.net.backbone(x.expand(-1, 3, -1, -1) if model.net.repeat_gray else x).float()

        return self._forward(batch, backbone)


class TorchBackend(_FusedTorch):
    """The model in fp32 on its inference copy (see :class:`_FusedTorch`): the eval-mode model's
    codes, up to ties at 0.5 that summation order decides.

    It computes where the model's weights are (:meth:`to` moves them): batches are copied there
    and codes come back to the host.
    """

    name = "torch"

    def __init__(self, model: DNNH) -> None:
        self._setup(model)
        self.device = next(model.parameters()).device


class TorchBf16Backend(_FusedTorch):
    """The backbone in bfloat16 (weights cast once, see :class:`_FusedTorch` and the module docstring)."""

    name = "torch-bf16"
    dtype = torch.bfloat16

    def __init__(self, model, device: str | None = None) -> None:
        self._setup(model)
        self.device = device or bf16_device()


def place_backend(backend: EncoderBackend, place: torch.device, reason: str) -> str:
    """Make ``backend`` compute on ``place`` (a resolved device, ``cuda:N`` with its index) and return
    ``reason`` saying where; refuse in one line what cannot run there.

    The torch engines move there (torch-bf16 only where bf16 runs in hardware: CUDA from compute
    capability 8.0, CPUs with AMX or AVX512-BF16). The onnxruntime engines run on the CPU: asking
    for another device is refused. Devices compare by type and index, so ``cuda`` is ``cuda:0``
    when GPU 0 is the current one (issue 34.5).
    """
    from dnnh.devices import bf16_supported, describe_device, resolve_device

    if isinstance(backend, _FusedTorch):
        if backend.dtype == torch.bfloat16 and not bf16_supported(place):
            raise ValueError(f"engine {backend.name} needs bf16 in hardware; {describe_device(place)} has none "
                             "(use --engine torch there)")
        backend.to(place)
        return f"{reason} on {describe_device(place)}" if place.type != "cpu" else reason
    own = resolve_device(getattr(backend, "device", "cpu"))
    if own != place:
        raise ValueError(f"engine {backend.name} runs on {describe_device(own)}; --device {device_label(place)} "
                         "applies to the torch engines (torch, torch-bf16)")
    return reason


def device_label(device: torch.device) -> str:
    return device.type if device.index is None else f"{device.type}:{device.index}"


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
    Weights are 8-bit where the CPU's int8 dot product accumulates exactly (VNNI, AMX-INT8) and
    7-bit elsewhere (:func:`dnnh.machine.int8_accumulates_exactly`: onnxruntime's advice against
    int16 saturation on AVX2), so the graph is quantised for the machine that encodes.
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
                                reduce_range=not machine.int8_accumulates_exactly(),  # int16 saturation
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


def _torch(run, data: Any = None) -> TorchBackend:
    return TorchBackend(run.load_model())


#: Engine name -> factory(run, data) of its backend: the one registry (names in dnnh.encoder.names).
BACKENDS: dict[str, Callable[..., EncoderBackend]] = {
    "torch": _torch,
    "torch-bf16": _bf16,
    "onnxruntime": _onnxruntime,
    "onnxruntime-int8": _onnxruntime_int8,
}


if tuple(BACKENDS) != ENGINES:  # pragma: no cover - the names module lists them for the command line
    raise ImportError(f"dnnh.encoder.names.ENGINES {ENGINES} must name BACKENDS {tuple(BACKENDS)}")


@dataclass(frozen=True)
class EngineChoice:
    """A backend and the one line that says why it computes the codes (``auto``: what it checked)."""

    backend: EncoderBackend
    reason: str
