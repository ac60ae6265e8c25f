"""What a training step minimises, given the approximate codes of one batch and its labels.

Every objective is called as ``objective(outputs, labels, query_outputs, indices)`` (indices: the
batch's dataset indices, for objectives with per-item targets such as CNNH's) and returns the loss and
how many triplets or pairs it saw; ``uses_logits`` says whether it wants the approximate codes in
[0, 1] (DNNH's triplet loss) or the pre-sigmoid outputs (the later losses). Two ways to form
DNNH's triplets share the loss: :class:`MinedTriplets` encodes each image of a
class-balanced batch once and mines triplets among them; :class:`ThreeStreamTriplets` is the
paper's layout, a batch of T random triplets stacked as [anchors; positives; negatives].
"""

from __future__ import annotations

import torch

from torch import nn

from dnnh.losses import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, TripletRankingLoss
from dnnh.miners import BatchTripletMiner

LOSSES = ("triplet", "dpsh", "dsh", "csq", "classifier", "cnnh")


class MinedTriplets(nn.Module):
    uses_logits = False

    def __init__(self, loss: TripletRankingLoss, miner: BatchTripletMiner) -> None:
        super().__init__()
        self.loss, self.miner = loss, miner

    def forward(self, codes: torch.Tensor, labels: torch.Tensor, query_codes: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Mean loss and triplet count. ``query_codes``: anchors from a separate query network."""
        anchors = codes if query_codes is None else query_codes
        matrix = self.loss.distance.matrix(anchors, codes)
        a, p, n = self.miner.mine(matrix.detach(), labels, self.loss.distance.is_similarity)
        return self.loss.from_matrix(matrix, a, p, n), int(a.numel())


class ThreeStreamTriplets(nn.Module):
    uses_logits = False

    def __init__(self, loss: TripletRankingLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, codes: torch.Tensor, labels: torch.Tensor, query_codes: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        t = codes.shape[0] // 3
        anchors = (codes if query_codes is None else query_codes)[:t]
        return self.loss(anchors, codes[t:2 * t], codes[2 * t:]), t


class BatchLoss(nn.Module):
    """A loss on a whole batch's outputs u and labels (DPSH, DSH, CSQ, the classifier reference)."""

    uses_logits = True

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, u: torch.Tensor, labels: torch.Tensor, query_u: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        return self.loss(u, labels), len(u) * (len(u) - 1) // 2


def make_batch_loss(name: str, bits: int, labels, seed: int = 0) -> BatchLoss:
    """The named later loss, sized for ``labels`` (1-D class ids or 2-D multi-hot)."""
    n_classes = int(labels.max()) + 1 if labels.ndim == 1 else int(labels.shape[1])
    losses = {
        "dpsh": lambda: DPSHLoss(),
        "dsh": lambda: DSHLoss(bits),
        "csq": lambda: CSQLoss(bits, n_classes, seed=seed),
        "classifier": lambda: ClassifierLoss(bits, n_classes, multilabel=labels.ndim == 2),
    }
    if name not in losses:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    return BatchLoss(losses[name]())
