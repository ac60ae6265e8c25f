"""How ``auto`` picks an engine, and why: the first of :data:`AUTO_ORDER` whose codes equal fp32 torch's.

:func:`choose_auto` takes the engines of :data:`AUTO_ORDER`, fastest first as
measured by ``benchmarks/encode_engines.py`` on this project's machine kind (AMD EPYC, 2 shared
cores, avx512_bf16 and avx512_vnni, no AMX; Fashion-MNIST, 48-bit nin-small, 69,000 database
images, against torch fp32 at 1 / 2 threads: onnxruntime 1.6x / 2.8x with every bit equal,
torch-bf16 2.1x / 2.1x with MAP -0.00104, onnxruntime-int8 3.9x / 5.4x with MAP +0.00130, so
onnxruntime is the fastest engine that meets the rule; those ratios are against torch before its
inference copy, which ``benchmarks/encode_speed.py`` measures against onnxruntime), and returns the
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

from typing import Any

import numpy as np
import torch

from dnnh.encoder.backends import BACKENDS, EncoderBackend, EngineChoice, OnnxRuntimeBackend, TorchBackend, run_images
from dnnh.encoder.names import AUTO, check_engine
from dnnh.encoder.onnx import ROLES

AUTO_ORDER = ("onnxruntime",)
AUTO_SAMPLE = 256
AUTO_TOLERANCE = 1e-5


def disagreement(reference: np.ndarray, outputs: np.ndarray, tolerance: float = AUTO_TOLERANCE) -> tuple[int, int]:
    """(bits that differ, of those how many have a reference output farther than ``tolerance`` from 0.5)."""
    differ = (reference > 0.5) != (outputs > 0.5)
    return int(differ.sum()), int((np.abs(reference[differ] - 0.5) > tolerance).sum())


def choose_auto(run, data: Any = None, sample: int = AUTO_SAMPLE, device: torch.device | None = None) -> EngineChoice:
    """The backend ``auto`` picks for ``run`` (see the module docstring), with the reason for the pick.

    On a GPU (``device`` of type cuda) the torch engine there: the candidates of
    :data:`AUTO_ORDER` run on the CPU, which a GPU outpaces, and they could not honour ``--device``.
    """
    model = run.load_model()
    if device is not None and device.type == "cuda":
        return EngineChoice(TorchBackend(model), "auto chose torch: the GPU outpaces the CPU engines it would "
                                                 "compare (onnxruntime runs on the CPU)")
    try:
        images = run_images(run, run.split.database, data, sample)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return EngineChoice(TorchBackend(model), f"auto chose torch: no database images to check other engines on "
                                                 f"({exc})")
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
            return EngineChoice(backend, f"auto chose {name}: its codes equal torch fp32's on {len(images)} "
                                         f"database images{ties}")
        notes.append(f"{name}: {far} bits differ from torch fp32 on {len(images)} database images")
    return EngineChoice(TorchBackend(model), "auto chose torch" + (f" ({'; '.join(notes)})" if notes else ""))


def make_backend(engine: str, run, data: Any = None) -> EncoderBackend:
    """The backend of ``engine`` (a name of :data:`ENGINES` or ``auto``) for ``run``'s best model.

    ``data``: the dataset to draw images from where the engine needs some (int8 calibration,
    ``auto``'s check), instead of the one the run was trained on. :func:`open_backend` also says why.
    """
    return open_backend(engine, run, data).backend


def open_backend(engine: str | None, run, data: Any = None, device: torch.device | None = None) -> EngineChoice:
    """The backend of ``engine`` (None: :data:`~dnnh.encoder.names.DEFAULT_ENGINE`) with its reason.

    ``device``: where the caller will run it (a resolved device), which only ``auto`` consults.
    """
    engine = check_engine(engine)
    if engine == AUTO:
        return choose_auto(run, data, device=device)
    return EngineChoice(BACKENDS[engine](run, data), f"engine: {engine}")
