"""Distances between approximate codes, passed to a loss (pytorch-metric-learning's design).

A distance says whether larger means closer (``is_similarity``), so one triplet loss serves the
paper's squared L2 form and the seed's dot-product form unchanged.
"""

from __future__ import annotations

import torch


class SquaredL2:
    """||a - b||^2 row by row; on 0/1 codes it equals the Hamming distance."""

    is_similarity = False

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).sum(dim=-1)

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(len(x), len(y)) distances; y defaults to x."""
        y = x if y is None else y
        return ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T).clamp_min(0)


class DotProduct:
    """a . b row by row: a similarity, larger means closer (the seed's Caffe sketch)."""

    is_similarity = True

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=-1)

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x @ (x if y is None else y).T


DISTANCES = {"l2": SquaredL2, "dot": DotProduct}
