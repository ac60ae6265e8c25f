"""Later deep-hashing losses, from their papers' definitions, on a batch's real-valued outputs u.

They are siblings of the triplet objectives and keep the same contract (:mod:`dnnh.losses.base`):
each reads the hash layer's pre-sigmoid outputs u (B, q) and the batch labels, its formula is
:meth:`batch_loss`, and the code of an image is sign(u), the same bit as DNNH's output > 0.5.
Similarity is the one DNNH uses (same class, or at least one shared label).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnnh.losses.base import BatchObjective
from dnnh.similarity import relevance


class DPSHLoss(BatchObjective):
    """DPSH (Li, Wang, Kang, IJCAI 2016): pairwise likelihood plus a quantisation penalty.

    L = -sum_{i<j} (s_ij theta_ij - log(1 + e^theta_ij)) + eta * sum_i ||b_i - u_i||^2,
    theta_ij = u_i.u_j / 2, b = sign(u); both terms averaged (pairs, items) so eta means the same
    whatever the batch size.
    """

    def __init__(self, eta: float = 0.1) -> None:
        super().__init__()
        self.eta = float(eta)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = relevance(labels, labels).to(u.dtype)
        theta = 0.5 * u @ u.T
        off_diag = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        likelihood = (F.softplus(theta) - s * theta)[off_diag].mean()
        quantisation = ((u - torch.sign(u).detach()) ** 2).sum(1).mean()
        return likelihood + self.eta * quantisation


class DSHLoss(BatchObjective):
    """DSH (Liu, Wang, Shan, Chen, CVPR 2016): contrastive loss on relaxed codes plus a |u| -> 1 term.

    For a pair with y = 0 if similar, 1 if not: (1 - y)/2 ||u_i - u_j||^2 + y/2 max(m - ||u_i - u_j||^2, 0),
    m = 2q by default (q = nbits), plus alpha (|| |u_i| - 1 ||_1 + || |u_j| - 1 ||_1); averaged over pairs.
    """

    def __init__(self, nbits: int, margin: float | None = None, alpha: float = 0.01) -> None:
        super().__init__()
        self.margin = float(2 * nbits if margin is None else margin)
        self.alpha = float(alpha)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        similar = relevance(labels, labels).to(u.dtype)
        d = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
        off_diag = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        pair = 0.5 * similar * d + 0.5 * (1 - similar) * torch.relu(self.margin - d)
        regular = (u.abs() - 1).abs().sum(1)
        return pair[off_diag].mean() + self.alpha * 2 * regular.mean()


def hadamard_centers(n_centers: int, nbits: int, seed: int = 0) -> torch.Tensor:
    """CSQ's hash centres in {-1, 1}^nbits: rows of a Hadamard matrix (and their negations) when
    2 * nbits covers the classes and nbits is a power of two, else random Bernoulli(0.5) rows."""
    if nbits & (nbits - 1) == 0 and n_centers <= 2 * nbits:
        h = torch.ones(1, 1)
        while h.shape[0] < nbits:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        return torch.cat([h, -h], 0)[:n_centers]
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_centers, nbits), generator=g).float() * 2 - 1


class CSQLoss(BatchObjective):
    """CSQ (Yuan et al., CVPR 2020): pull each code to its class's hash centre, plus quantisation.

    v = tanh(u); L = BCE((v + 1)/2, (c + 1)/2) summed over bits, averaged over items,
    + lam * mean((|v| - 1)^2). Multi-label: the centre is the sign of the sum of the labels' centres.
    """

    def __init__(self, nbits: int, n_classes: int, lam: float = 1e-4, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("centers", hadamard_centers(n_classes, nbits, seed))
        self.lam = float(lam)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim == 1:
            target = self.centers[labels]
        else:
            summed = labels.to(u.dtype) @ self.centers
            target = torch.where(summed >= 0, 1.0, -1.0)
        v = torch.tanh(u)
        probs = ((v + 1) / 2).clamp(1e-6, 1 - 1e-6)
        bce = F.binary_cross_entropy(probs, (target + 1) / 2, reduction="none").sum(1).mean()
        return bce + self.lam * ((v.abs() - 1) ** 2).mean()


class ClassifierLoss(BatchObjective):
    """The reference of Sablayrolles et al. (2017): a classifier whose q-unit tanh layer is the code.

    The hash layer's u goes through tanh, then a linear classifier; cross-entropy on the class
    (multi-label: binary cross-entropy per label). Codes are sign(u), as for the other losses.
    """

    def __init__(self, nbits: int, n_classes: int, multilabel: bool = False) -> None:
        super().__init__()
        self.classifier = nn.Linear(nbits, n_classes)
        self.multilabel = multilabel

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(torch.tanh(u))
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels)
