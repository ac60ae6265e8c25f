"""Triplets mined inside a batch whose images were each encoded once.

The paper pushes three images through the network per triplet; encoding a class-balanced batch
of B images once and forming its triplets there gives O(B^3) triplets for B forward passes.
Strategies (Hermans et al. 2017; Schroff et al. 2015):
``all`` every valid (a, p, n); ``semi-hard`` those with d(a,p) < d(a,n) < d(a,p) + margin;
``hard`` those with d(a,n) <= d(a,p) (already wrongly ordered); ``batch-hard`` for each anchor
its farthest positive and its closest negative.
"""

from __future__ import annotations

import torch

from dnnh.miners.relevance import relevance

STRATEGIES = ("all", "semi-hard", "hard", "batch-hard")


class BatchTripletMiner:
    def __init__(self, strategy: str = "all", margin: float = 1.0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy, self.margin = strategy, float(margin)

    def valid_mask(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, B, B) mask of valid triplets: p similar to a (p != a), n not similar to a."""
        rel = relevance(labels, labels)
        positive = rel & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        return positive[:, :, None] & ~rel[:, None, :]

    @torch.no_grad()
    def mine(self, distances: torch.Tensor, labels: torch.Tensor, is_similarity: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices (a, p, n) into the batch, from its (B, B) distance (or similarity) matrix."""
        d = -distances if is_similarity else distances  # smaller is closer from here on
        mask = self.valid_mask(labels)
        if self.strategy == "batch-hard":
            rel = relevance(labels, labels)
            eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
            pos_d = d.masked_fill(~rel | eye, float("-inf"))
            neg_d = d.masked_fill(rel, float("inf"))
            has = torch.isfinite(pos_d.max(1).values) & torch.isfinite(neg_d.min(1).values)
            anchors = torch.nonzero(has).squeeze(1)
            return anchors, pos_d.argmax(1)[anchors], neg_d.argmin(1)[anchors]
        d_ap, d_an = d[:, :, None], d[:, None, :]
        if self.strategy == "semi-hard":
            mask &= (d_an > d_ap) & (d_an < d_ap + self.margin)
        elif self.strategy == "hard":
            mask &= d_an <= d_ap
        a, p, n = torch.nonzero(mask, as_tuple=True)
        return a, p, n
