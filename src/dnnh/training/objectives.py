"""What a training step minimises, given the approximate codes of one batch and its labels.

Two ways to form DNNH's triplets share the loss: :class:`MinedTriplets` encodes each image of a
class-balanced batch once and mines triplets among them; :class:`ThreeStreamTriplets` is the
paper's layout, a batch of T random triplets stacked as [anchors; positives; negatives].
"""

from __future__ import annotations

import torch

from dnnh.losses import TripletRankingLoss
from dnnh.miners import BatchTripletMiner


class MinedTriplets:
    def __init__(self, loss: TripletRankingLoss, miner: BatchTripletMiner) -> None:
        self.loss, self.miner = loss, miner

    def __call__(self, codes: torch.Tensor, labels: torch.Tensor,
                 query_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Mean loss and triplet count. ``query_codes``: anchors from a separate query network."""
        anchors = codes if query_codes is None else query_codes
        matrix = self.loss.distance.matrix(anchors, codes)
        a, p, n = self.miner.mine(matrix.detach(), labels, self.loss.distance.is_similarity)
        return self.loss.from_matrix(matrix, a, p, n), int(a.numel())


class ThreeStreamTriplets:
    def __init__(self, loss: TripletRankingLoss) -> None:
        self.loss = loss

    def __call__(self, codes: torch.Tensor, labels: torch.Tensor,
                 query_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        t = codes.shape[0] // 3
        anchors = (codes if query_codes is None else query_codes)[:t]
        return self.loss(anchors, codes[t:2 * t], codes[2 * t:]), t
