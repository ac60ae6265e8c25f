"""GreedyHash (Su, Zhang, Zhao, Tian, NeurIPS 2018): train on the binary codes themselves.

The forward pass takes b = sign(u); the backward pass hands b's gradient to u unchanged (the
straight-through estimator the paper derives from its greedy step). A linear classifier on b
supplies the supervision, and a cubic penalty pulls |u| to 1 so that sign(u) moves little.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnnh.losses.base import BatchObjective


class _SignStraightThrough(torch.autograd.Function):
    """sign(u) forward; the incoming gradient passed to u unchanged backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sign(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def sign_straight_through(u: torch.Tensor) -> torch.Tensor:
    """b = sign(u) whose gradient with respect to u is the identity."""
    return _SignStraightThrough.apply(u)


class GreedyHashLoss(BatchObjective):
    """GreedyHash's supervised objective: L = CE(W b_i, y_i) + alpha * mean_{i, k} | |u_ik| - 1 |^3,
    b = sign(u) with the straight-through gradient (:func:`sign_straight_through`), W a linear
    classifier without bias (its weights travel with the checkpoint).

    Followed line by line: DeepHash-pytorch's GreedyHash.py (alpha = 0.1, ``Linear(bit, n_class,
    bias=False)``, the penalty as ``(u.abs() - 1).pow(3).abs().mean()``), which follows the
    authors' code (ssppp/GreedyHash) and the paper's eq. with p = 3. Deviation: multi-label data
    takes binary cross-entropy per label (the reference keeps only the first label's class,
    ``argmax`` of the one-hot row).
    """

    def __init__(self, nbits: int, n_classes: int, alpha: float = 0.1, multilabel: bool = False) -> None:
        super().__init__()
        self.classifier = nn.Linear(int(nbits), int(n_classes), bias=False)
        self.alpha, self.multilabel = float(alpha), bool(multilabel)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(sign_straight_through(u))
        if self.multilabel:
            ce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        else:
            ce = F.cross_entropy(logits, labels)
        return ce + self.alpha * ((u.abs() - 1).abs() ** 3).mean()
