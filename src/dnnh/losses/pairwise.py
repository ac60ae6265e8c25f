"""Later deep-hashing losses, from their papers' definitions, on a batch's real-valued outputs u.

They are siblings of the triplet objectives and keep the same contract (:mod:`dnnh.losses.base`):
each reads the hash layer's pre-sigmoid outputs u (B, q) and the batch labels, its formula is
:meth:`batch_loss`, and the code of an image is sign(u), the same bit as DNNH's output > 0.5.
Similarity is the one DNNH uses (same class, or at least one shared label).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnnh.losses.base import BatchObjective, off_diagonal_mean
from dnnh.similarity import relevance


class DPSHLoss(BatchObjective):
    """DPSH (Li, Wang, Kang, IJCAI 2016): pairwise likelihood plus a quantisation penalty.

    L = mean_{i != j} (log(1 + e^theta_ij) - s_ij theta_ij) + eta * mean_{i, k} (u_ik - b_ik)^2,
    theta_ij = u_i.u_j / 2, b = sign(u). Both terms are means (over the batch's ordered pairs, and
    over its items *and bits*), so ``eta`` is a weight per element, whatever the batch size or
    code length. Until issue 15 the term was summed over the bits, q times stronger (48x at 48
    bits): 33 of 48 bits ended constant over the training images.

    Which gradient: the paper's. Pairs are the batch's own and both sides of a pair carry the
    gradient (dL/du_i sums theta_ij's and theta_ji's terms). Both references (DeepHash-pytorch's
    DPSH.py, the authors' DPSH-pytorch) pair the batch with a memory of every training code
    refreshed with ``u.data``, so the other side of each pair is a detached copy and their
    likelihood gradient is half of this one. ``eta`` = 0.2 (since issue 33; 0.1 before) is
    therefore DeepHash-pytorch's alpha = 0.1 in effect: the whole gradient is twice theirs, in the
    same direction, with quantisation weighed against the likelihood as theirs (a test checks the
    ratio); under an adaptive optimiser (AdamW, the modern recipe) the runs are the same, under
    SGD the step is twice theirs. The authors' lambda = 10 divides both sums by (training images x
    batch), about 0.1 per element at 48 bits on 5,000 training images, so 0.2 here too.
    docs/METHOD.md §11 has every later loss's default against its references.
    """

    def __init__(self, eta: float = 0.2) -> None:
        super().__init__()
        self.eta = float(eta)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = relevance(labels, labels).to(u.dtype)
        theta = 0.5 * u @ u.T
        likelihood = off_diagonal_mean(F.softplus(theta) - s * theta)
        quantisation = ((u - torch.sign(u).detach()) ** 2).mean()  # per element: over items and bits
        return likelihood + self.eta * quantisation


class DSHLoss(BatchObjective):
    """DSH (Liu, Wang, Shan, Chen, CVPR 2016): contrastive loss on relaxed codes plus a |u| -> 1 term.

    For a pair with y = 0 if similar, 1 if not: (1 - y)/2 ||u_i - u_j||^2 + y/2 max(m - ||u_i - u_j||^2, 0),
    m = 2q by default (q = nbits), plus alpha (|| |u_i| - 1 ||_1 + || |u_j| - 1 ||_1); averaged over pairs.
    ``alpha`` is on the paper's scale (0.01 there: the L1 norms are summed over bits, two items a
    pair). DeepHash-pytorch's alpha = 0.1 weighs the mean over elements against a pair term whose
    other side is a detached memory copy (half this pair gradient), so it is alpha = 0.1 / q here
    (0.0021 at 48 bits; docs/METHOD.md §11). Both sides of an in-batch pair carry the gradient here.
    """

    def __init__(self, nbits: int, margin: float | None = None, alpha: float = 0.01) -> None:
        super().__init__()
        self.margin = float(2 * nbits if margin is None else margin)
        self.alpha = float(alpha)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        similar = relevance(labels, labels).to(u.dtype)
        d = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
        pair = 0.5 * similar * d + 0.5 * (1 - similar) * torch.relu(self.margin - d)
        regular = (u.abs() - 1).abs().sum(1)
        return off_diagonal_mean(pair) + self.alpha * 2 * regular.mean()


#: How many random draws :func:`hadamard_centers` makes before giving up with an error.
MAX_CENTRE_TRIES = 10_000


def _sylvester(nbits: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < nbits:
        h = np.block([[h, h], [h, -h]])
    return h


def centre_distances(centres: torch.Tensor | np.ndarray) -> np.ndarray:
    """Hamming distances of every pair i < j of {-1, 1} centres (rows), as a flat array."""
    c = np.asarray(centres, dtype=np.float64)
    d = (c.shape[1] - c @ c.T) / 2
    return d[np.triu_indices(len(c), k=1)]


def hadamard_centers(n_centers: int, nbits: int, seed: int = 0, max_tries: int = MAX_CENTRE_TRIES) -> torch.Tensor:
    """CSQ's hash centres in {-1, 1}^nbits, drawn by the reference's rule (DeepHash-pytorch's CSQ.py).

    When nbits is a power of two, the rows of a Hadamard matrix and then their negations, as many as
    there are classes (at most 2 * nbits). The remaining centres (all of them at other lengths) are
    random rows with nbits // 2 entries -1, redrawn together until every pair of centres is more
    than nbits / 4 bits apart and the mean distance is at least nbits / 2. The reference gives up
    silently after 20 draws and keeps the last; here a seeded generator (``seed``) draws up to
    ``max_tries`` times, then raises a ValueError saying what could not be met.
    """
    n_centers, nbits = int(n_centers), int(nbits)
    if n_centers < 1 or nbits < 1:
        raise ValueError(f"need at least one centre and one bit, got {n_centers} centres of {nbits} bits")
    fixed = np.zeros((0, nbits))
    if nbits & (nbits - 1) == 0:
        h = _sylvester(nbits)
        fixed = np.concatenate([h, -h])[:n_centers]
    n_random = n_centers - len(fixed)
    if n_random == 0:
        return torch.from_numpy(fixed).float()
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        rows = np.ones((n_random, nbits))
        for row in rows:
            row[rng.permutation(nbits)[:nbits // 2]] = -1
        centres = np.concatenate([fixed, rows])
        d = centre_distances(centres)
        if len(d) == 0 or (d.min() > nbits / 4 and d.mean() >= nbits / 2):
            return torch.from_numpy(centres).float()
    raise ValueError(f"could not draw {n_centers} CSQ hash centres of {nbits} bits with every pair more than "
                     f"{nbits / 4:g} bits apart and {nbits / 2:g} apart on average in {max_tries} tries "
                     f"(seed {seed}); use a longer code or fewer classes")


def tie_breaks(nbits: int, seed: int = 0) -> torch.Tensor:
    """The bits a multi-label centre takes where its labels' centres cancel: one random {-1, 1}
    vector drawn once (seeded), as the reference's ``multi_label_random_center``."""
    rng = np.random.default_rng([int(seed), 15])  # a stream of its own, apart from the centres'
    return torch.from_numpy(rng.integers(0, 2, int(nbits)) * 2.0 - 1).float()


def class_targets(centres: torch.Tensor, ties: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each item's {-1, 1} target from per-class ``centres``: its class's row, or for multi-label rows
    the sign of the summed rows of its labels, a bit where they cancel taking the ``ties`` bit
    (the rule of CSQ's and DPN's references, ``multi_label_random_center``)."""
    if labels.ndim == 1:
        return centres[labels]
    summed = labels.to(centres.dtype) @ centres
    return torch.where(summed > 0, 1.0, torch.where(summed < 0, -1.0, ties.expand_as(summed)))


class CSQLoss(BatchObjective):
    """CSQ (Yuan et al., CVPR 2020): pull each code to its class's hash centre, plus quantisation.

    v = tanh(u); L = mean_{i, k} BCE((v_ik + 1)/2, (c_ik + 1)/2) + lam * mean_{i, k} (|v_ik| - 1)^2:
    both terms means over items and bits, the reference's reduction, so ``lam`` is the
    reference's lambda (1e-4). Centres: :func:`hadamard_centers`. Multi-label: the centre is the
    sign of the sum of the labels' centres; a bit where they cancel takes the seeded
    :func:`tie_breaks` bit (the reference's random centre), not +1.

    The BCE is computed from the logit 2u ((tanh(u) + 1) / 2 = sigmoid(2u)), the same loss and
    gradient, 2 (sigmoid(2u) - t) / N, as the reference's BCE on (v + 1) / 2. Until issue 33 the
    probability was clamped to [1e-6, 1 - 1e-6], which zeroed the gradient of every bit more than
    about 6.9 on the wrong side of its centre (at |u| = 7.5: 1e-17 instead of about 2 / N); the
    reference keeps pushing there until tanh rounds to 1 in fp32 (|u| of about 9), the logit form
    everywhere.
    """

    def __init__(self, nbits: int, n_classes: int, lam: float = 1e-4, seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("centers", hadamard_centers(n_classes, nbits, seed))
        self.register_buffer("ties", tie_breaks(nbits, seed))
        self.lam = float(lam)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """The centre of each item: its class's, or for multi-label rows the sign of the summed centres."""
        return class_targets(self.centers, self.ties, labels)

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = self.targets(labels).to(u.dtype)
        v = torch.tanh(u)
        # (tanh(u) + 1) / 2 = sigmoid(2u): the same BCE from the logit 2u, exact however far u is from its centre
        bce = F.binary_cross_entropy_with_logits(2 * u, (target + 1) / 2)
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
