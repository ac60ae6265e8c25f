"""Counting the calls that make the host wait for a CUDA device, in a CPU run or on a GPU.

Why: a training step that asks the GPU for a value (``loss.item()``), a shape that depends on data
(``torch.nonzero``, a boolean mask as an index) or a blocking host-to-device copy stops the host
until the GPU has run everything queued before it; the next step's kernels are then launched
into an idle GPU. A few such waits a step leave a small network's GPU busy a fraction of the
time (issue 34.8). :class:`HostSyncCounter` records each such call as it is made.

What it counts (the name recorded in :attr:`HostSyncCounter.events`):

* ``item``, ``tolist``, ``__int__``, ``__float__``, ``__bool__``, ``__index__``, ``__complex__``,
  ``equal``, ``allclose``, ``is_nonzero`` on a device tensor: the value is read on the host;
* ``nonzero``, ``argwhere``, ``masked_select``, ``unique``, ``unique_consecutive``, ``bincount``,
  ``repeat_interleave``, one-argument ``where``: the result's shape depends on the data;
* ``mask-index``: a boolean device tensor used as an index (``x[mask]``, ``x[mask] = v``);
* ``h2d``: a copy to the device with ``non_blocking=False``, and a tensor made from host data
  (``torch.tensor``, ``as_tensor``) with an explicit ``device=``; ``d2h``: a copy of a device
  tensor to the host (``.cpu()``, ``.to("cpu")``, ``.numpy()``);
* ``synchronize``: recorded by whoever replaces ``torch.cuda.synchronize`` (:meth:`record`).

Which tensors are "on the device": on a real GPU, those whose ``device.type`` is ``cuda``. With
``fake=True`` (no GPU; tests/support/fake_cuda.py) every device argument naming ``cuda`` is
rewritten to the CPU, so the code takes its CUDA branches while computing on the CPU, and the
counter remembers which tensors would live on the GPU: those made or moved there (any tensor made
with an explicit ``device=``, since ``device=x.device`` names the CPU for a faked GPU tensor x), and
every result of an operation that read one of them.

Steps: ``Tensor.backward`` marks the end of a training step, so :meth:`per_step` gives the calls
made from one backward to the next (each interval holds one whole step, shifted: the rest of
one step and the start of the next), leaving out what comes before the first backward and
after the last (an epoch's set-up and its end).

This module imports torch only (``dnnh.testing`` imports no other dnnh module).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

#: Methods that read a device value on the host.
READS = frozenset({"item", "tolist", "__int__", "__float__", "__bool__", "__index__", "__complex__", "equal",
                   "allclose", "is_nonzero"})
#: Operations whose result's shape depends on the data (the host waits to learn it).
DATA_SHAPED = frozenset({"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount",
                         "repeat_interleave"})
#: Functions that make a tensor from host data (a list, a number, a numpy array).
FROM_HOST = frozenset({"tensor", "as_tensor", "asarray"})
BACKWARD = "backward"


def _parse_to(args: tuple, kwargs: dict) -> tuple:
    """``Tensor.to``'s (device, dtype, non_blocking, memory_format), as torch reads its arguments."""
    return torch._C._nn._parse_to(*args[1:], **{k: v for k, v in kwargs.items() if k != "copy"})


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return isinstance(device, str) and device.lower().startswith("cuda")


def _is_cpu(device: Any) -> bool:
    return (isinstance(device, torch.device) and device.type == "cpu") or device == "cpu"


class HostSyncCounter(TorchFunctionMode):
    """A torch function mode that records every call that would make the host wait (module docstring).

    Use as a context manager around the code to watch. ``fake``: run CUDA code on the CPU (every
    ``cuda`` device argument becomes ``cpu``) while counting as if on the GPU.
    """

    def __init__(self, fake: bool = False) -> None:
        super().__init__()
        self.fake = fake
        self.events: list[str] = []
        self._resident: dict[int, weakref.ref] = {}  # id -> the tensor (a WeakSet would compare tensors with ==)

    # --- what a caller reads -------------------------------------------------------------------

    def record(self, name: str) -> None:
        """Record a wait made outside torch's functions (a replaced ``torch.cuda.synchronize``)."""
        self.events.append(name)

    @property
    def syncs(self) -> list[str]:
        """Every recorded wait, in order (step marks left out)."""
        return [e for e in self.events if e != BACKWARD]

    def per_step(self) -> list[list[str]]:
        """The waits between one ``backward`` and the next: one list a training step (see the module docstring)."""
        steps: list[list[str]] = []
        current: list[str] | None = None
        for event in self.events:
            if event == BACKWARD:
                if current is not None:
                    steps.append(current)
                current = []
            elif current is not None:
                current.append(event)
        return steps

    # --- the mode ------------------------------------------------------------------------------

    def on_device(self, value: Any) -> bool:
        if not isinstance(value, torch.Tensor):
            return False
        if not self.fake:
            return value.device.type == "cuda"
        ref = self._resident.get(id(value))
        return ref is not None and ref() is value

    def _add(self, value: torch.Tensor) -> None:
        if len(self._resident) > 200_000:  # forget the dead now and then
            self._resident = {k: r for k, r in self._resident.items() if r() is not None}
        self._resident[id(value)] = weakref.ref(value)

    def _to_cpu(self, value: Any) -> Any:
        return torch.device("cpu") if _is_cuda(value) else value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if func is torch.device:  # naming a device is not using it
            return func(*args, **kwargs)
        if name == BACKWARD:
            self.events.append(BACKWARD)
        self._count(name, args, kwargs)
        target_cuda = self._targets_cuda(name, args, kwargs)
        if self.fake and name != "to" and kwargs.get("device") is not None:
            target_cuda = True  # faked, ``device=x.device`` of a GPU tensor x names the CPU: made for the GPU all the same
        if self.fake:
            if name in ("pin_memory", "cuda"):  # no pinned memory, no GPU: the tensor itself stands for both
                out = args[0]
                if name == "cuda":
                    self._add(out)
                return out
            kwargs.pop("pin_memory", None)
            args, kwargs = tree_map(self._to_cpu, args), tree_map(self._to_cpu, kwargs)
        out = func(*args, **kwargs)
        if self.fake and target_cuda and name == "to" and out is args[0] and not self.on_device(args[0]):
            out = out.clone()  # on the CPU ``.to`` returned the host tensor itself; on a GPU it is a new one
        if self.fake:
            self._track(name, args, kwargs, out, target_cuda)
        return out

    def _targets_cuda(self, name: str, args: tuple, kwargs: dict) -> bool:
        """Whether the call names a CUDA device as where its result goes."""
        if name == "to":
            device, _, _, _ = _parse_to(args, kwargs)
            return _is_cuda(device) or (len(args) > 1 and isinstance(args[1], torch.Tensor) and self.on_device(args[1]))
        return _is_cuda(kwargs.get("device"))

    def _count(self, name: str, args: tuple, kwargs: dict) -> None:
        first = args[0] if args else None
        if name in READS and self.on_device(first):
            self.events.append(name)
        elif name in DATA_SHAPED and self.on_device(first):
            if name != "repeat_interleave" or kwargs.get("output_size") is None:
                self.events.append(name)
        elif name == "where" and len(args) + len(kwargs) == 1 and self.on_device(first):
            self.events.append("nonzero")
        elif name in ("__getitem__", "__setitem__", "index_put", "index_put_") and len(args) > 1:
            index = args[1]
            parts = index if isinstance(index, (tuple, list)) else (index,)
            if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool and self.on_device(p) for p in parts):
                self.events.append("mask-index")
        elif name in FROM_HOST and "device" in kwargs and (_is_cuda(kwargs["device"]) or self.fake):
            if not (args and self.on_device(args[0])):
                self.events.append("h2d")
        elif name in ("to", "cuda"):
            if name == "to":
                device, _, non_blocking, _ = _parse_to(args, kwargs)
            else:
                device, non_blocking = "cuda", kwargs.get("non_blocking", False)
            if _is_cuda(device) and not non_blocking and not self.on_device(first):
                self.events.append("h2d")
            elif not self.fake and _is_cpu(device) and self.on_device(first):
                self.events.append("d2h")  # faked, ``x.to(y.device)`` names the CPU for a GPU tensor y: no copy
        elif name == "copy_" and len(args) > 1:
            if self.on_device(first) and not self.on_device(args[1]) and not kwargs.get("non_blocking", False):
                self.events.append("h2d")
            elif self.on_device(args[1]) and not self.on_device(first):
                self.events.append("d2h")
        elif name in ("cpu", "numpy") and self.on_device(first):
            self.events.append("d2h")

    def _track(self, name: str, args: tuple, kwargs: dict, out: Any, target_cuda: bool) -> None:
        """Fake mode: remember which results would live on the GPU."""
        if name in ("cpu", "numpy") or name in READS:
            return
        read = any(self.on_device(v) for v in tree_flatten((args, kwargs))[0])
        if target_cuda or read:
            for value in tree_flatten(out)[0]:
                if isinstance(value, torch.Tensor):
                    self._add(value)
