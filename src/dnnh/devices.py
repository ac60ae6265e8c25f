"""Where training and encoding run: naming a device, the arithmetic it gets, and what it is.

A *device* is where tensors live: ``cpu``, ``cuda`` (the current GPU) or ``cuda:N``; ``auto``
is CUDA where ``torch.cuda.is_available()``, else the CPU. The device is not part of what a
run is: a run trained on a GPU resumes, evaluates and encodes on a CPU and the other way round
(checkpoints hold CPU tensors), so everything device-specific is decided here, at run time.

Precision per device (``--precision auto``, resolved by :func:`dnnh.config.resolve_precision`):

- CUDA with compute capability 8.0 or later (Ampere on): bf16 autocast. bf16 keeps fp32's
  exponent range, so no loss scaling is needed.
- Older CUDA GPUs: fp16 autocast with a :class:`torch.amp.GradScaler`, since fp16's narrow range
  underflows small gradients without it. bf16 is refused there (no hardware for it).
- CPU: today's rule (:func:`dnnh.machine.bf16_is_fast`): bf16 where AMX-BF16 or AVX512-BF16 run
  it in hardware, else fp32. fp16 is refused on the CPU (emulated, and no faster than fp32).

The hash head, threshold and loss stay fp32 on every device (see :class:`dnnh.nn.DNNH`).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator

import torch

from dnnh.checks import DEVICE_CHOICES, DeviceError, parse_device  # noqa: F401  (named there: no torch)
from dnnh.machine import bf16_is_fast

#: First compute capability with bf16 tensor cores (Ampere, sm_80).
BF16_CAPABILITY = (8, 0)

_announced: set[str] = set()


def cuda_available() -> bool:
    """Whether a CUDA device can be used (a seam for tests, which monkeypatch it)."""
    return torch.cuda.is_available()


def resolve_device(spec: str | torch.device | None = "auto",
                   announce: Callable[[str], None] | None = None) -> torch.device:
    """The :class:`torch.device` that ``spec`` names on this machine (a GPU always with its index).

    ``auto`` (or None): CUDA where available, else CPU; with ``announce``, the choice is said
    once per process (the same choice is not repeated by every command that resolves it).
    ``cuda``/``cuda:N`` where there is no such GPU raises :class:`DeviceError` with one line.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    kind, index = parse_device("auto" if spec is None else spec)
    if kind == "auto":
        device = torch.device("cuda", torch.cuda.current_device()) if cuda_available() else torch.device("cpu")
        if announce is not None:
            line = f"device auto: {describe_device(device)}"
            if line not in _announced:
                _announced.add(line)
                announce(line)
        return device
    if kind == "cpu":
        return torch.device("cpu")
    if not cuda_available():
        raise DeviceError(f"device {spec!r} asked for, but this machine has no usable CUDA GPU "
                          f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}); "
                          "use --device cpu or auto")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceError(f"device cuda:{index} asked for, but this machine has {count} CUDA GPU(s) "
                          f"(cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index if index is not None else torch.cuda.current_device())


def recorded_device(name: str | None) -> torch.device:
    """The device a run recorded (``config.device``) where this machine has it, else the CPU.

    What scoring right after training uses (``dnnh train``, the bench): the GPU a run trained on
    encodes its split there in a second instead of minutes on the host (issue 34.4); a GPU run
    opened on a machine without that GPU scores on the CPU.
    """
    try:
        kind, index = parse_device(name or "cpu")
    except DeviceError:
        return torch.device("cpu")
    if kind != "cuda" or not cuda_available() or (index or 0) >= torch.cuda.device_count():
        return torch.device("cpu")
    return torch.device("cuda", index if index is not None else torch.cuda.current_device())


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:N`` with the index filled in (what config.json records)."""
    if device.type != "cuda":
        return device.type
    return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"


def gpu_properties(device: torch.device | int | None = None) -> dict[str, object] | None:
    """Name, compute capability and memory (GiB) of a CUDA device; None without CUDA.

    The hook :mod:`dnnh.machine` and the benchmarks use to say which GPU a figure came from.
    """
    if not cuda_available():
        return None
    index = device.index if isinstance(device, torch.device) else device
    index = torch.cuda.current_device() if index is None else int(index)
    props = torch.cuda.get_device_properties(index)
    return {"index": index, "name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1)}


def describe_device(device: torch.device) -> str:
    """One line: ``cpu``, or ``cuda:0 (NVIDIA H100, compute capability 9.0, 80.0 GiB)``."""
    if device.type != "cuda":
        return "cpu"
    p = gpu_properties(device)
    if p is None:  # pragma: no cover - a CUDA device named without CUDA is refused earlier
        return str(device)
    return f"cuda:{p['index']} ({p['name']}, compute capability {p['capability']}, {p['memory_gib']} GiB)"


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 in hardware: compute capability 8.0+ on CUDA, AMX/AVX512-BF16 on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    return bf16_is_fast()


def cuda_precision(device: torch.device | str) -> str:
    """What ``auto`` precision means on a CUDA device: bf16 from compute capability 8.0, else fp16."""
    device = resolve_device(device)
    return "bf16" if bf16_supported(device) else "fp16"


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse, in one line, arithmetic the device cannot run (before a run starts, not mid-epoch)."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 (autocast with loss scaling) needs a CUDA device; use fp32 or bf16 here")
    if precision == "bf16" and device.type == "cuda" and not bf16_supported(device):
        raise ValueError(f"precision bf16 needs a GPU of compute capability 8.0 or later; {describe_device(device)} "
                         "is older: use fp16 or auto")


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (disabled for fp32)."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 on CUDA; a disabled scaler (a no-op wrapper) for everything else."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``.

    CPU generators are Mersenne Twister, CUDA ones Philox: the same seed draws the same numbers
    on every CPU (so the CPU path equals the one before device placement), and the same numbers
    on every CUDA device, but a CPU stream and a CUDA stream differ.
    """
    return torch.Generator(device=device).manual_seed(seed)


def distributed_backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes (and across machines without GPUs)."""
    return "nccl" if device.type == "cuda" else "gloo"


def local_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of one process of several: ``cuda:LOCAL_RANK`` for CUDA, the CPU stays the CPU."""
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DeviceError(f"process of local rank {local_rank} needs cuda:{local_rank}, but this machine has "
                          f"{count} CUDA GPU(s): start at most {count} processes a machine")
    return torch.device("cuda", local_rank)


def speed_switches(device: torch.device, deterministic: bool = False) -> None:
    """cuDNN's autotuner on a GPU: the fastest convolution for the fixed input size (not when
    ``deterministic``: the autotuner may pick another algorithm on the next run).

    TF32 is not switched on (issue 34.7). torch's defaults stand: cuDNN convolutions (the backbone's;
    ``torch.backends.cudnn.conv.fp32_precision`` is ``tf32``) may use TF32 in an fp32 run, while
    matmuls (the hash head's and the loss's; ``torch.backends.cuda.matmul.fp32_precision``) stay IEEE
    fp32, so the head, threshold and loss keep full fp32 and nothing later in the process (encoding,
    another library) inherits a changed setting. On Ampere and later, ``--precision auto`` trains the
    backbone in bf16 anyway.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``--deterministic`` for the duration: torch's deterministic kernels (``warn_only``: an operation
    without one warns instead of failing the run; on CUDA NIN's global average pool's backward is
    one) and cuDNN's fixed convolutions; the process's own settings come back afterwards.

    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when CUDA starts: set here, it counts only when training
    is the process's first use of the GPU (set it in the environment otherwise).
    """
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


#: The torch.compile backend ``--compile`` uses (tests name a capturing one to see the graphs without a C compiler).
COMPILE_BACKEND = "inductor"


class CompiledForward:
    """``--compile``: the training step's forward (``model`` or ``model.logits``) under ``torch.compile``.

    Why the function and not the backbone in place: ``Module.compile()`` on a NIN backbone (an
    ``nn.Sequential``) captured nothing (dynamo does not trace ``Sequential.forward`` as a frame), so
    ``--compile`` was a silent no-op for every NIN backbone (issue 34.2). Compiling the call the loop
    makes captures the whole network, backbone and head, and leaves the model's modules and their
    state_dict keys as they are (the inference copy and the checkpoints never see the compiler).

    ``dynamic=False``, and no probe on a made-up batch: the first training step compiles for the real
    batch shape (a two-image probe made dynamo mark the batch dimension dynamic). Compilation happens
    at that first call; if it fails (no C compiler or Triton for inductor, an unsupported Python...)
    one line says so and the run continues eager from that same batch. Later surprises in a frame
    fall back to eager for that frame (dynamo's ``suppress_errors``, set once compiling worked).
    """

    def __init__(self, forward: Callable[..., torch.Tensor], log: Callable[[str], None] | None = None) -> None:
        self.eager, self.log = forward, log
        self.compiled = torch.compile(forward, dynamic=False, backend=COMPILE_BACKEND)
        self.state = "untried"  # then "compiled" or "eager"

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        if self.state == "eager":
            return self.eager(*args, **kwargs)
        if self.state == "compiled":
            return self.compiled(*args, **kwargs)
        import torch._dynamo

        try:
            with torch._dynamo.config.patch(suppress_errors=False):  # failures seen here, not hidden per frame
                out = self.compiled(*args, **kwargs)
        except Exception as exc:  # raised while compiling, before the graph ran
            torch._dynamo.reset()
            self.state = "eager"
            if self.log is not None:
                self.log(f"--compile: cannot compile here ({_first_line(exc)}); training uncompiled")
            return self.eager(*args, **kwargs)
        self.state = "compiled"
        torch._dynamo.config.suppress_errors = True
        return out


def _first_line(exc: BaseException) -> str:
    """The first line of what went wrong, under dynamo's wrapping (``backend='inductor' raised:``)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings on a GPU are meaningless without it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak GPU memory allocated by tensors since the process started (None on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30
