"""The one contract every training objective keeps, so the training loop never asks which it has.

An objective is called as ``objective(outputs, labels, query_outputs=None, indices=None)`` and
returns ``(loss, count)``: the scalar to minimise and how many triplets or pairs it saw (for the
throughput figures): an int where the host knows it from shapes, else a 0-dim integer tensor on the
loss's device (DTSH's triplets depend on the labels), which the trainer sums there and reads once an
epoch. No loss makes the host wait for the device (no ``.item()``, ``int()`` or ``bool()`` of a device
value, no boolean-mask indexing, no ``nonzero``): masks multiply or go through ``torch.where``, and a
mean over a masked set divides by its count clamped to at least 1 (in-batch mining is the miner's
affair, :mod:`dnnh.miners`). ``outputs`` are the batch's network outputs; which ones is the
objective's ``input``: ``"codes"`` (approximate codes in [0, 1], what DNNH's triplet loss reads) or
``"logits"`` (the pre-sigmoid outputs u, what DPSH, DSH, CSQ, the classifier reference and CNNH
read; their code is sign(u), the same bit as output > 0.5). ``query_outputs`` are the anchors'
outputs from a separate query network, when the model has one; ``indices`` the batch's dataset
indices, for objectives with per-item targets (CNNH). An objective's parameters and buffers (a
classifier, hash centres, targets) travel with the checkpoint.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

INPUTS = ("codes", "logits")


def off_diagonal_mean(matrix: torch.Tensor) -> torch.Tensor:
    """Mean of a square (B, B) matrix over its B (B - 1) entries i != j; 0 for B = 1.

    ``torch.where`` on the diagonal, not a boolean-mask selection: the selection's size depends on
    the mask, so on a GPU the host would wait for it.
    """
    n = matrix.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=matrix.device)
    return torch.where(eye, 0.0, matrix).sum() / max(n * (n - 1), 1)


class Objective(nn.Module):
    """Base of every training objective: ``forward(outputs, labels, query_outputs, indices) -> (loss, count)``."""

    input: ClassVar[str] = "logits"

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int | torch.Tensor]:
        raise NotImplementedError


class BatchObjective(Objective):
    """An objective defined on a whole batch's u and labels; subclasses fill in :meth:`batch_loss`.

    The count is the number of pairs in the batch. A separate query network's outputs are not
    used: these losses treat every item of a batch alike.
    """

    input: ClassVar[str] = "logits"

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        return self.batch_loss(outputs, labels), len(outputs) * (len(outputs) - 1) // 2
