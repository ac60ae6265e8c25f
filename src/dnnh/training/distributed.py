"""Training on several processes (PyTorch DDP semantics, under ``torchrun`` or ``dnnh train --nproc``).

The design keeps N processes equivalent to one process with the same global batch:

- every rank draws the same global batch (the same seeded generators) and encodes a disjoint,
  contiguous share of it (:meth:`Distributed.share`);
- the shares' outputs are gathered *with their gradients* (:meth:`Distributed.gather`), so the
  miner and the loss see the whole global batch on every rank: the triplets are those of one
  process, and the loss is the same number everywhere;
- after ``backward`` each rank's gradients are all-reduced (:meth:`Distributed.average_gradients`).
  The gather's backward sums the gradient of a share over the ranks (a factor N, since every rank
  computed the same loss), and the all-reduce averages over them, which leaves exactly the
  one-process gradient; so the ranks take identical steps and stay identical.
- rank 0 alone writes the run directory and validates; the others wait for it at a barrier and
  read what it wrote (a shared filesystem across machines). That barrier is on a gloo group of its
  own with a long timeout (:data:`WAIT_FOR_MAIN_S`), so a validation or checkpoint longer than the
  collectives' timeout (NCCL's 10 minutes) does not kill the others' next collective; the
  collectives keep the default timeout, so a real hang is still found;
- the process group this module started is destroyed when training ends (:meth:`Distributed.close`).

Devices: on the CPU the processes talk over gloo (which also runs across machines); on CUDA each
process trains on ``cuda:LOCAL_RANK`` and they talk over NCCL (:func:`dnnh.devices.distributed_backend`).
Batch norm: on CUDA it is PyTorch's ``SyncBatchNorm``, statistics over the global batch, as in one
process (the inference copy folds it like any batch norm, :mod:`dnnh.nn.fuse`). ``SyncBatchNorm`` needs GPU tensors, so on the CPU each rank normalises over its own
share — training works, checkpoints and resumes, but with batch norm N CPU processes are not
bit-for-bit one process. Dropout masks are drawn per share, by each rank's own generator, so with
dropout too the equivalence is in distribution only; with neither, N processes give one
process's losses and weights to float rounding (tests/training/test_distributed.py). The
NCCL path has not been run on GPUs yet (docs/RESULTS.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather

from dnnh import devices


#: How long the other ranks wait for rank 0's work (validation, the run's files) at :meth:`Distributed.barrier`.
WAIT_FOR_MAIN_S = 6 * 3600


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: ``rank`` of ``world`` processes (``world == 1``: one process)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")  # this process's: cuda:LOCAL_RANK on CUDA
    waiting: Any = None  # the gloo group the barrier waits on (long timeout); None for one process
    owns_group: bool = False  # whether from_environment started the process group (close() ends it then)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device = torch.device("cpu"),
                         collective_timeout: timedelta | None = None) -> "Distributed":
        """One process on ``device``, or the group ``torchrun`` describes in WORLD_SIZE / RANK /
        LOCAL_RANK (joined on first call): gloo on the CPU, NCCL with ``cuda:LOCAL_RANK`` on CUDA.

        ``collective_timeout``: the collectives' timeout when the group is started here (default:
        torch's). Every rank also joins a gloo group for :meth:`barrier` with :data:`WAIT_FOR_MAIN_S`.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=device)
        device = devices.local_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            timeout = {"timeout": collective_timeout} if collective_timeout is not None else {}
            dist.init_process_group(backend=devices.distributed_backend(device), **timeout)
        waiting = dist.new_group(backend="gloo", timeout=timedelta(seconds=WAIT_FOR_MAIN_S))
        return cls(rank=dist.get_rank(), world=dist.get_world_size(), device=device, waiting=waiting, owns_group=owns)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` with batch norm synchronised over the ranks where that runs (several CUDA processes)."""
        if self.world > 1 and self.device.type == "cuda":
            return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def share(self, n: int) -> tuple[int, int]:
        """Rows start..stop of a global batch of ``n`` that this rank encodes (equal shares)."""
        if n % self.world:
            raise ValueError(f"a global batch of {n} images does not split evenly over {self.world} processes; "
                             f"choose a batch size that gives a multiple of {self.world}")
        per = n // self.world
        return self.rank * per, (self.rank + 1) * per

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """Every rank's share, concatenated in rank order, differentiable back to each share."""
        if self.world == 1:
            return local
        return torch.cat(all_gather(local.contiguous()), dim=0)

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """All-reduce the gradients of ``parameters`` as one flat buffer, then divide by the world size."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        """Wait until every rank is here: the others wait for rank 0's validation and files, on the gloo
        group with the long timeout (not the collectives' group, whose timeout a long validation passes)."""
        if self.world > 1:
            dist.barrier(group=self.waiting)

    def close(self) -> None:
        """End the process group this object started (torch warns at exit about one left open)."""
        if self.world > 1 and self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
