"""DNNH's triplet ranking loss (Lai et al. 2015, eq. 2; docs/METHOD.md §5).

With a distance d: max(0, d(a, p) - d(a, n) + m). With a similarity s (the seed's dot-product
form): max(0, m - (s(a, p) - s(a, n))). Averaged over triplets. No triplets gives a zero that is
still attached to the graph, so a batch without a valid triplet back-propagates nothing instead
of failing. ``reduction="active"`` averages over the triplets that still violate the margin
(Hermans et al. 2017): with every triplet of a batch mined, most are already satisfied and a
plain mean shrinks the gradient as training succeeds. ``smooth=True`` replaces the hinge by
softplus (Hermans et al.'s soft margin; pytorch-metric-learning's ``smooth_loss``): the hinge stops
pushing two classes apart once they are ``m`` apart on the training set, softplus keeps pushing
with a force that decays exponentially in the gap. Every triplet then counts, so "active" is "mean".
"""

from __future__ import annotations

import torch
from torch import nn

from dnnh.similarity import Distance, make_distance


class TripletRankingLoss(nn.Module):
    def __init__(self, margin: float = 1.0, distance: Distance | str | None = None,
                 reduction: str = "mean", smooth: bool = False) -> None:
        super().__init__()
        self.smooth = bool(smooth)
        if reduction not in ("mean", "active"):
            raise ValueError(f"reduction must be 'mean' or 'active', got {reduction!r}")
        self.reduction = reduction
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.distance = make_distance(distance)

    def per_triplet(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if not (anchor.shape == positive.shape == negative.shape):
            raise ValueError(f"anchor, positive and negative must have one shape, got "
                             f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}")
        return self._hinge(self.distance.pairwise(anchor, positive), self.distance.pairwise(anchor, negative))

    def _hinge(self, d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
        gap = d_an - d_ap if self.distance.is_similarity else d_ap - d_an
        return nn.functional.softplus(gap + self.margin) if self.smooth else torch.relu(gap + self.margin)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        if anchor.shape[0] == 0:
            return anchor.sum() * 0.0
        return self._reduce(self.per_triplet(anchor, positive, negative))

    def _reduce(self, losses: torch.Tensor) -> torch.Tensor:
        if self.reduction == "active":
            return losses.sum() / (losses > 0).sum().clamp_min(1)
        return losses.mean()

    def from_matrix(self, matrix: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """The same mean loss for mined triplets, read off a batch's (B, B) distance matrix.

        Equal to ``forward(x[a], x[p], x[n])`` but gathers O(T) scalars instead of O(T * bits).
        """
        if a.numel() == 0:
            return matrix.sum() * 0.0
        return self._reduce(self._hinge(matrix[a, p], matrix[a, n]))

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={type(self.distance).__name__}, reduction={self.reduction}, smooth={self.smooth}"
