"""One faked CUDA GPU on a CPU-only machine: dnnh takes its CUDA code paths while torch computes on the CPU.

:func:`fake_gpu` answers dnnh's and torch's questions about CUDA as one H100 would (available,
one device, compute capability 9.0), replaces what would need a real GPU (CUDA generators, the
CUDA random state, ``torch.cuda.synchronize``) and runs the code inside a
:class:`dnnh.testing.syncs.HostSyncCounter` in fake mode, which rewrites every ``cuda`` device
argument to the CPU and counts each call that would make the host wait for the GPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Iterator

import torch

from dnnh import devices
from dnnh.testing.syncs import HostSyncCounter


@contextmanager
def fake_gpu(monkeypatch) -> Iterator[HostSyncCounter]:
    """Inside: ``cuda`` and ``auto`` resolve to a faked ``cuda:0``; yields the counter of host waits."""
    counter = HostSyncCounter(fake=True)
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: SimpleNamespace(name="faked H100", major=9, minor=0, total_memory=80 << 30))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: counter.record("synchronize"))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: None)
    monkeypatch.setattr(devices, "generator", lambda device, seed: torch.Generator().manual_seed(seed))
    # the settings dnnh switches for a GPU are process-wide: put them back afterwards
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    with counter:
        yield counter
