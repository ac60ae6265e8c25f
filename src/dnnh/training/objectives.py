"""One registry from a loss name to the objective that trains with it.

``make_objective(name, spec, labels, train_idx)`` is the only place a name becomes an object:
the training config validates names against :data:`dnnh.config.LOSSES` (which a new loss joins) and
the training loop calls this.
Every objective keeps the contract of :mod:`dnnh.losses.base`. The registry lives with training
because one entry pairs a loss with a miner (``triplet``), which the losses themselves never
import (pytorch-metric-learning's trainers do the same).
``spec`` carries the settings an objective may read (the triplet ones only matter for
``triplet``, ``eta`` / ``alpha`` / ``lam`` for DPSH / DSH / CSQ); ``labels`` are the whole
dataset's labels (class count, relevance) and ``train_idx`` the training items (CNNH computes
its targets for them).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from dnnh.config import LOSSES, MINING_STRATEGIES, ObjectiveSpec
from dnnh.losses import (ClassifierLoss, CNNHLoss, CSQLoss, DPNLoss, DPSHLoss, DSHLoss, DTSHLoss, GreedyHashLoss,
                         HashNetLoss, MinedTriplets, Objective, OrthoHashLoss, ThreeStreamTriplets, TripletRankingLoss)
from dnnh.miners import STRATEGIES, BatchTripletMiner

if STRATEGIES != MINING_STRATEGIES:  # pragma: no cover - the config names them without importing torch
    raise ImportError(f"dnnh.config.MINING_STRATEGIES {MINING_STRATEGIES} must equal dnnh.miners.STRATEGIES {STRATEGIES}")


def _n_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if labels.ndim == 1 else int(labels.shape[1])


class MaskMinedTriplets(MinedTriplets):
    """:class:`MinedTriplets` that scores the miner's (B, B, B) triplet mask instead of its index lists.

    The same loss up to summation order, with no shape that depends on the data: mining by index
    lists (``nonzero``) makes the host wait for a GPU once a step, this does not (issue 34.8). It
    computes the hinge of all B^3 (anchor, positive, negative) combinations (16.7 M at a batch of
    256: 64 MB in fp32, and as much for its gradient) and averages over the mask. The trainer uses
    it on a GPU (``make_objective(..., sync_free=True)``); the CPU keeps the index lists, whose
    arithmetic is the one every CPU figure was measured with, and where the wait costs nothing.
    """

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss and the triplet count (a 0-dim tensor on the device: reading it would wait)."""
        anchors = outputs if query_outputs is None else query_outputs
        mask = self.miner.triplet_mask(outputs, labels, anchors)
        matrix = self.loss.distance.matrix(anchors, outputs)
        hinge = self.loss._hinge(matrix[:, :, None], matrix[:, None, :])  # [a, p, n]: d(a, p) against d(a, n)
        total = torch.where(mask, hinge, 0.0).sum()
        count = mask.sum()
        # TripletRankingLoss's reductions over the masked triplets: "mean" over them all, "active" over
        # those that still violate the margin; no triplet gives a zero still attached to the graph.
        over = (mask & (hinge > 0)).sum() if self.loss.reduction == "active" else count
        return total / over.clamp_min(1), count


def _triplet(spec: ObjectiveSpec, labels: np.ndarray, train_idx: np.ndarray, sync_free: bool = False) -> Objective:
    loss = TripletRankingLoss(margin=spec.margin, distance=spec.distance, reduction=spec.reduction,
                              smooth=spec.smooth)
    if spec.triplets == "random":
        return ThreeStreamTriplets(loss)
    mined = MaskMinedTriplets if sync_free else MinedTriplets
    return mined(loss, BatchTripletMiner(spec.triplets, margin=spec.margin, distance=spec.distance))


OBJECTIVES: dict[str, Callable[[ObjectiveSpec, np.ndarray, np.ndarray], Objective]] = {
    "triplet": _triplet,
    "dpsh": lambda spec, labels, train_idx: DPSHLoss(eta=spec.eta),
    "dsh": lambda spec, labels, train_idx: DSHLoss(spec.nbits, alpha=spec.alpha),
    "csq": lambda spec, labels, train_idx: CSQLoss(spec.nbits, _n_classes(labels), lam=spec.lam, seed=spec.seed),
    "classifier": lambda spec, labels, train_idx: ClassifierLoss(spec.nbits, _n_classes(labels),
                                                                 multilabel=labels.ndim == 2),
    "cnnh": lambda spec, labels, train_idx: CNNHLoss(labels, train_idx, spec.nbits, seed=spec.seed),
    "orthohash": lambda spec, labels, train_idx: OrthoHashLoss(spec.nbits, _n_classes(labels), margin=spec.ortho_margin,
                                                               codebook=spec.codebook, seed=spec.seed),
    "dtsh": lambda spec, labels, train_idx: DTSHLoss(alpha=spec.dtsh_alpha),
    "hashnet": lambda spec, labels, train_idx: HashNetLoss(spec.nbits, alpha_q=spec.hashnet_alpha),
    "greedyhash": lambda spec, labels, train_idx: GreedyHashLoss(spec.nbits, _n_classes(labels),
                                                                 alpha=spec.greedy_alpha, multilabel=labels.ndim == 2),
    "dpn": lambda spec, labels, train_idx: DPNLoss(spec.nbits, _n_classes(labels), margin=spec.dpn_margin,
                                                   seed=spec.seed),
}
if tuple(OBJECTIVES) != LOSSES:  # pragma: no cover - caught by the first import in any test
    raise ImportError(f"dnnh.config.LOSSES {LOSSES} must name the registry's losses {tuple(OBJECTIVES)} in order")
__all__ = ["LOSSES", "OBJECTIVES", "ObjectiveSpec", "make_objective"]


def make_objective(name: str, spec: ObjectiveSpec, labels: np.ndarray, train_idx: np.ndarray,
                   sync_free: bool = False) -> Objective:
    """The objective called ``name`` (one of :data:`LOSSES`), built for this dataset's labels.

    ``sync_free``: for a GPU, the form that never makes the host wait (in-batch mining scores a
    mask, :class:`MaskMinedTriplets`); the other objectives have one form.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    if name == "triplet":
        return _triplet(spec, np.asarray(labels), np.asarray(train_idx), sync_free=sync_free)
    return OBJECTIVES[name](spec, np.asarray(labels), np.asarray(train_idx))
