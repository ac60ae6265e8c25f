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

from dnnh.config import LOSSES, MINING_STRATEGIES, ObjectiveSpec
from dnnh.losses import (ClassifierLoss, CNNHLoss, CSQLoss, DPNLoss, DPSHLoss, DSHLoss, DTSHLoss, GreedyHashLoss,
                         HashNetLoss, MinedTriplets, Objective, OrthoHashLoss, ThreeStreamTriplets, TripletRankingLoss)
from dnnh.miners import STRATEGIES, BatchTripletMiner

if STRATEGIES != MINING_STRATEGIES:  # pragma: no cover - the config names them without importing torch
    raise ImportError(f"dnnh.config.MINING_STRATEGIES {MINING_STRATEGIES} must equal dnnh.miners.STRATEGIES {STRATEGIES}")


def _n_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if labels.ndim == 1 else int(labels.shape[1])


def _triplet(spec: ObjectiveSpec, labels: np.ndarray, train_idx: np.ndarray) -> Objective:
    loss = TripletRankingLoss(margin=spec.margin, distance=spec.distance, reduction=spec.reduction,
                              smooth=spec.smooth)
    if spec.triplets == "random":
        return ThreeStreamTriplets(loss)
    return MinedTriplets(loss, BatchTripletMiner(spec.triplets, margin=spec.margin, distance=spec.distance))


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


def make_objective(name: str, spec: ObjectiveSpec, labels: np.ndarray, train_idx: np.ndarray) -> Objective:
    """The objective called ``name`` (one of :data:`LOSSES`), built for this dataset's labels."""
    if name not in OBJECTIVES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    return OBJECTIVES[name](spec, np.asarray(labels), np.asarray(train_idx))
