"""Likelihood losses on inner products of relaxed codes: DTSH (triplets) and HashNet (weighted pairs).

Both keep the contract of :mod:`dnnh.losses.base` and read the hash layer's real-valued outputs u
(``input = "logits"``); an image's code is sign(u), the same bit as DNNH's output > 0.5. Triplets
and pairs are the batch's own (the class-balanced batches of the modern recipe give every anchor
positives and negatives); similarity is the one DNNH uses (same class, or a shared label).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnnh.losses.base import BatchObjective, Objective, off_diagonal_mean
from dnnh.similarity import relevance


class DTSHLoss(Objective):
    """DTSH (Wang, Shi, Kitani, ACCV 2016, "Deep Supervised Hashing with Triplet Labels").

    For every in-batch triplet (i, j, k), j != i similar to i and k dissimilar, with
    Theta_ij = u_i.u_j / 2 and d = Theta_ij - Theta_ik - alpha, the negative log-likelihood of the
    triplet label is -(d - log(1 + e^d)) = softplus(-d). Per anchor the mean over its triplets;
    the loss is the mean over anchors that have both a positive and a negative, plus
    lam * mean_{i, k} (u_ik - sign(u_ik))^2 (the quantisation term, b = sign(u)).

    Followed line by line: DeepHash-pytorch's DTSH.py (alpha = 5, lambda = 1, per-anchor mean,
    quantisation averaged over elements) and the paper's likelihood. Deviations: Theta keeps the
    paper's 1/2 (the reference drops it), so for binary codes Theta_ij - Theta_ik is the Hamming
    distance d(i, k) - d(i, j) and ``alpha`` is a margin in bits; the anchor itself is not its own
    positive (the reference's similarity matrix keeps the diagonal); no clamp of d (softplus is
    stable where the reference's log(1 + exp) needed one). The count is the number of triplets.
    So the default margin of 5 bits is 10 on the reference's scale, twice its 5 (2.5 bits here,
    with the likelihood's slope half the reference's; docs/METHOD.md §11).
    """

    input = "logits"

    def __init__(self, alpha: float = 5.0, lam: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.lam = float(alpha), float(lam)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the number of triplets, a 0-dim tensor on u's device (counting them on the
        host would wait for the device)."""
        u = outputs
        theta = 0.5 * u @ u.T
        similar = relevance(labels, labels)
        eye = torch.eye(len(u), dtype=torch.bool, device=u.device)
        triplets = (similar & ~eye)[:, :, None] & ~similar[:, None, :]  # [i, j, k]: j positive, k negative of i
        d = theta[:, :, None] - theta[:, None, :] - self.alpha
        n = triplets.sum((1, 2))
        per_anchor = torch.where(triplets, F.softplus(-d), 0.0).sum((1, 2)) / n.clamp_min(1)
        likelihood = per_anchor.sum() / (n > 0).sum().clamp_min(1)  # an anchor without triplets adds 0
        quantisation = ((u - torch.sign(u).detach()) ** 2).mean()
        return likelihood + self.lam * quantisation, n.sum()


class HashNetLoss(BatchObjective):
    """HashNet (Cao, Long, Wang, Yu, ICCV 2017): weighted pairwise likelihood on z = tanh(beta u),
    with beta raised during training (continuation) so z approaches sign(u).

    L = sum_{i != j} w_ij (log(1 + e^{a z_i.z_j}) - s_ij a z_i.z_j) / |S|, w_ij = |S| / |S_1| for
    similar pairs and |S| / |S_0| for dissimilar ones (S the batch's pairs, S_1 / S_0 its similar /
    dissimilar ones), a = ``alpha_q`` / q. beta = (1 + gamma t)^power, recomputed every ``step``
    training steps t (gamma 0.005, power 0.5, step 200); the step count is a buffer, so a resumed
    run continues the schedule.

    Followed line by line: the authors' PyTorch code (thuml/HashNet pytorch/src/network.py: the
    scale schedule; train.py: sigmoid_param = 10 / q; loss.py: a scales both the log and the
    linear term, as here) and, for the weights, the paper's eq. and DeepHash-pytorch's HashNet.py
    (the authors' loss.py weighs similar pairs by a constant ``class_num`` instead).
    DeepHash-pytorch's a is 0.1 whatever q (``alpha_q`` = 0.1 q here: 4.8 at 48 bits;
    docs/METHOD.md §11). Deviations: pairs are the batch's own without i = j (the authors pair
    two batches, DeepHash-pytorch the batch with itself, i = j included); the softplus replaces
    the authors' switch to a linear branch above 15 (both are numerical guards); no quantisation
    term (the authors' default weight is 0).
    """

    def __init__(self, nbits: int, alpha_q: float = 10.0, gamma: float = 0.005, power: float = 0.5,
                 step: int = 200) -> None:
        super().__init__()
        self.alpha = float(alpha_q) / int(nbits)
        self.gamma, self.power, self.step = float(gamma), float(power), int(step)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def scale(self) -> torch.Tensor:
        """The continuation's current scale beta = (1 + gamma t)^power at the last multiple t of
        ``step``, a 0-dim tensor on the step counter's device (reading it on the host would wait)."""
        t = torch.div(self.steps, self.step, rounding_mode="floor") * self.step
        return (1.0 + self.gamma * t.double()) ** self.power

    @property
    def beta(self) -> float:
        """:meth:`scale` as a Python float (for reports; it waits for the device)."""
        return float(self.scale())

    def batch_loss(self, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # a training step (the reference counts forward passes in train mode)
            self.steps += 1
        z = torch.tanh(self.scale().to(u.dtype) * u)
        ip = self.alpha * z @ z.T
        similar = relevance(labels, labels)
        off_diag = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        n_pairs = len(u) * (len(u) - 1)
        n_similar = (similar & off_diag).sum().clamp(min=1).to(u.dtype)
        n_dissimilar = (~similar & off_diag).sum().clamp(min=1).to(u.dtype)
        weight = torch.where(similar, n_pairs / n_similar, n_pairs / n_dissimilar)
        return off_diagonal_mean(weight * (F.softplus(ip) - similar.to(u.dtype) * ip))
