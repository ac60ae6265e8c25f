"""Losses that give every class a fixed {-1, 1} code and pull each image's code to its class's:
OrthoHash (cosine cross-entropy against a codebook) and DPN (a bit-wise hinge against random targets).

Both keep the contract of :mod:`dnnh.losses.base` and read the hash layer's real-valued outputs u
(``input = "logits"``); an image's code is sign(u), the same bit as DNNH's output > 0.5. Their
class codes are buffers, so they travel with the checkpoint and a resumed run keeps them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dnnh.config import CODEBOOKS  # how OrthoHash's codebook is drawn (see make_codebook)
from dnnh.losses.base import BatchObjective
from dnnh.losses.pairwise import class_targets, hadamard_centers, tie_breaks


def bernoulli_codebook(n_classes: int, nbits: int, seed: int = 0) -> torch.Tensor:
    """One {-1, 1} row a class, every entry an independent fair coin (OrthoHash's default ``B``)."""
    rng = np.random.default_rng([int(seed), 24])  # a stream of its own, apart from the split's and the model's
    return torch.from_numpy(rng.integers(0, 2, (int(n_classes), int(nbits))) * 2.0 - 1).float()


def make_codebook(kind: str, n_classes: int, nbits: int, seed: int = 0) -> torch.Tensor:
    """OrthoHash's codebook: ``bernoulli`` (the reference's default) or ``hadamard`` (CSQ's centres,
    :func:`dnnh.losses.pairwise.hadamard_centers`: Hadamard rows at power-of-two lengths)."""
    if kind == "bernoulli":
        return bernoulli_codebook(n_classes, nbits, seed)
    if kind == "hadamard":
        return hadamard_centers(n_classes, nbits, seed)
    raise ValueError(f"codebook must be one of {CODEBOOKS}, got {kind!r}")


class OrthoHashLoss(BatchObjective):
    """OrthoHash (Hoe et al., NeurIPS 2021, "One Loss for All"): cross-entropy over scaled cosines
    between each code and a fixed ±1 codebook, with an additive margin on the true class.

    logits_ic = s * (cos(v_i, c_c) - m [c is a label of i]); L = CE(logits, y). v is the hash
    layer's output *after batch normalisation*: the reference's hash layer is Linear then
    BatchNorm1d, and its codes are sign(BN(.)) (the BN centres every bit, which the paper credits
    for bit balance); the training config turns on that normalisation in the head for this loss
    (``code_norm``, :class:`dnnh.nn.dnnh.ModelConfig`), so training and encoding read the same v.
    Multi-label (the reference's ``label_smoothing``): the margin is taken off every label's
    cosine and the target is the labels divided by their count, L = -mean_i sum_c t_ic log
    softmax(logits_i)_c.

    Followed line by line: the authors' repository (kamwoh/orthohash: functions/loss/orthohash.py,
    models/alexnet.py's CosSim, scripts/train_hashing.py's codebook): s = 8, m = 0.2 (their
    README uses 0.3 for CIFAR-10), margin type ``cos``, quantisation weight 0 (their default, so
    no quantisation term here), Bernoulli codebook by default. Deviations: the codebook is drawn
    from a seeded generator of its own; the ``hadamard`` option is CSQ's centre rule, not one of
    the reference's N/B/O; the head keeps its bias before the BN (the reference has none: the BN
    removes it anyway).
    """

    def __init__(self, nbits: int, n_classes: int, margin: float = 0.2, scale: float = 8.0,
                 codebook: str = "bernoulli", seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("codebook", make_codebook(codebook, n_classes, nbits, seed))
        self.margin, self.scale, self.codebook_kind = float(margin), float(scale), codebook

    def cosines(self, v: torch.Tensor) -> torch.Tensor:
        """(B, n_classes) cosine similarities of the codes to the codebook rows."""
        return F.normalize(v, dim=1) @ F.normalize(self.codebook.to(v.dtype), dim=1).T

    def batch_loss(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosines(v)
        if labels.ndim == 1:
            onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
            return F.cross_entropy(self.scale * (cos - self.margin * onehot), labels)
        y = labels.to(cos.dtype)
        logits = self.scale * (cos - self.margin * y)
        target = y / y.sum(1, keepdim=True).clamp(min=1)  # an item without labels contributes 0
        return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def dpn_targets(n_classes: int, nbits: int, seed: int = 0, share: float = 0.5) -> torch.Tensor:
    """DPN's random target vectors: each class a {-1, 1} row with exactly ``int(nbits * share)``
    entries -1 at random places (DeepHash-pytorch's ``get_target_vectors`` with p = 0.5)."""
    rng = np.random.default_rng([int(seed), 2020])
    rows = np.ones((int(n_classes), int(nbits)))
    for row in rows:
        row[rng.permutation(int(nbits))[:int(nbits * share)]] = -1
    return torch.from_numpy(rows).float()


class DPNLoss(BatchObjective):
    """DPN (Fan et al., IJCAI 2020, Deep Polarized Network): a bit-wise hinge that pushes u_ik to
    the side of its class's random target t_ck, by at least m.

    L = mean_{i, k} max(0, m - u_ik t_ik), t_i the target of i's class (multi-label: the sign of
    the summed targets of its labels, a cancelled bit taking a seeded random bit, the reference's
    rule and CSQ's, :func:`dnnh.losses.pairwise.class_targets`). Targets: :func:`dpn_targets`.

    Followed line by line: DeepHash-pytorch's DPN.py (m = 1, p = 0.5, the polarisation loss
    alone, as its default ``[DPN]``), which follows the paper's eq. for the fixed (non-adaptive)
    targets. Not included: the paper's adaptive target update and ternary assignment (the
    reference's ``-A`` and ``-T`` variants, off by default there). Deviation: targets come from a
    seeded generator; the reference redraws them 20 times in a loop with Python's ``random`` and
    keeps the last draw, which is one random draw all the same.
    """

    def __init__(self, nbits: int, n_classes: int, margin: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("targets", dpn_targets(n_classes, nbits, seed))
        self.register_buffer("ties", tie_breaks(nbits, seed))
        self.margin = float(margin)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = class_targets(self.targets, self.ties, labels).to(u.dtype)
        return torch.relu(self.margin - u * t).mean()
