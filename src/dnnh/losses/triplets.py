"""DNNH's two training objectives: triplets mined in a batch, and the paper's three-stream triplets.

Both score triplets with one :class:`~dnnh.losses.TripletRankingLoss` on the approximate codes
in [0, 1] (``input = "codes"``). :class:`MinedTriplets` encodes each image of a class-balanced
batch once and lets a miner pick the triplets among them (O(B^3) triplets for B forward passes);
:class:`ThreeStreamTriplets` is the paper's layout, a batch of T random triplets stacked as
[anchors; positives; negatives] (docs/METHOD.md §1).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch

from dnnh.losses.base import Objective
from dnnh.losses.triplet_ranking import TripletRankingLoss
from dnnh.similarity import Distance


class TripletMiner(Protocol):
    """What :class:`MinedTriplets` needs of a miner (:class:`dnnh.miners.BatchTripletMiner` is one).

    The loss does not import the miners: the trainer hands it one, as in pytorch-metric-learning.
    """

    distance: Distance

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor, anchor_embeddings: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class MinedTriplets(Objective):
    input: ClassVar[str] = "codes"

    def __init__(self, loss: TripletRankingLoss, miner: TripletMiner) -> None:
        super().__init__()
        if type(loss.distance) is not type(miner.distance):
            raise ValueError(f"the miner measures with {type(miner.distance).__name__} but the loss with "
                             f"{type(loss.distance).__name__}: give both the same distance")
        self.loss, self.miner = loss, miner

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Mean loss and triplet count. ``query_outputs``: anchors from a separate query network."""
        anchors = outputs if query_outputs is None else query_outputs
        a, p, n = self.miner.mine(outputs, labels, anchors)
        matrix = self.loss.distance.matrix(anchors, outputs)
        return self.loss.from_matrix(matrix, a, p, n), int(a.numel())


class ThreeStreamTriplets(Objective):
    input: ClassVar[str] = "codes"

    def __init__(self, loss: TripletRankingLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        t = outputs.shape[0] // 3
        anchors = (outputs if query_outputs is None else query_outputs)[:t]
        return self.loss(anchors, outputs[t:2 * t], outputs[2 * t:]), t
