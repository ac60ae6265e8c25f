"""Heads that turn the backbone's 50q features into q approximate bits in [0, 1].

:class:`DivideAndEncode` is DNNH's module: the features are cut into q slices and slice k alone
feeds bit k, which the paper argues reduces redundancy between bits. All q per-slice linear units
are one batched multiply (weights of shape (q, slice)), not q modules in a loop.
:class:`FullyConnectedEncoder` is the ablation the paper compares against: every bit sees every
feature.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dnnh.checks import accept_old_bits_keyword, check_nbits
from dnnh.nn.threshold import PiecewiseThreshold


def _activation(eps: float | None) -> nn.Module:
    """Sigmoid then the threshold; ``eps=None`` means no threshold (the ablation)."""
    return nn.Sequential(nn.Sigmoid(), PiecewiseThreshold(eps)) if eps is not None else nn.Sigmoid()


class _Head(nn.Module):
    """What both heads share: ``nbits`` outputs (``bits``: its old name, still read), and an optional
    batch normalisation of them (``code_norm``: OrthoHash's codes are sign(BN(u)), which centres
    every bit; in eval mode the running statistics, so an image's code does not depend on its batch)."""

    nbits: int

    @property
    def bits(self) -> int:
        return self.nbits

    def _add_code_norm(self, code_norm: bool) -> None:
        self.code_norm = nn.BatchNorm1d(self.nbits) if code_norm else None

    def _normalised(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.code_norm is None else self.code_norm(u)


class DivideAndEncode(_Head):
    @accept_old_bits_keyword
    def __init__(self, in_features: int, nbits: int, eps: float | None = 0.1, code_norm: bool = False) -> None:
        super().__init__()
        nbits = check_nbits(nbits)
        if in_features % nbits:
            raise ValueError(f"in_features ({in_features}) must be a multiple of nbits ({nbits}): "
                             f"the features are cut into {nbits} equal slices")
        self.in_features, self.nbits, self.slice_size = in_features, nbits, in_features // nbits
        self.weight = nn.Parameter(torch.empty(nbits, self.slice_size))
        self.bias = nn.Parameter(torch.empty(nbits))
        bound = 1.0 / math.sqrt(self.slice_size)  # nn.Linear's default init, per slice
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.activation = _activation(eps)
        self._add_code_norm(code_norm)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid values, (n, nbits): slice k of the features dotted with weight row k."""
        if features.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features, got {features.shape[-1]}")
        slices = features.reshape(features.shape[0], self.nbits, self.slice_size)
        # (nbits, n, slice) @ (nbits, slice, 1): the batched product einsum("nks,ks->nk") runs, bit for bit,
        # written as a MatMul because ONNX has Einsum only from opset 12 and `dnnh export` promises 11.
        products = torch.matmul(slices.transpose(0, 1), self.weight.unsqueeze(-1)).squeeze(-1).t()
        return self._normalised(products + self.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.logits(features))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, nbits={self.nbits}, slice_size={self.slice_size}"


class FullyConnectedEncoder(_Head):
    @accept_old_bits_keyword
    def __init__(self, in_features: int, nbits: int, eps: float | None = 0.1, code_norm: bool = False) -> None:
        super().__init__()
        nbits = check_nbits(nbits)
        self.in_features, self.nbits = in_features, nbits
        self.linear = nn.Linear(in_features, nbits)
        self.activation = _activation(eps)
        self._add_code_norm(code_norm)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self._normalised(self.linear(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.logits(features))
