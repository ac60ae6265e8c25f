"""CNNH (Xia, Pan, Lai, Liu, Yan, AAAI 2014), the two-stage predecessor of DNNH, as a training objective.

Stage 1 learns target codes for the training items alone, from their similarity matrix S
(S_ij = 1 similar, -1 dissimilar, diagonal included) by minimising

    f(H) = ||S - (1/q) H H^T||_F^2,   H in {-1, 1}^{n x q}.

As in the paper, the binary constraint is relaxed to H in [-1, 1]^{n x q} and solved by random
coordinate descent: one entry H_ij at a time moves along the Newton direction of f restricted
to that entry, clipped to stay in [-1, 1]; the targets are sign(H) at the end. With
R = qS - HH^T and h = H[:, j], moving H_ij by d changes q^2 f by the quartic

    g(d) = d^4 + 4 h_i d^3 + 2 (h_i^2 + h.h - R_ii) d^2 - 4 (R h)_i d,

so the Newton step is d = (Rh)_i / (h_i^2 + h.h - R_ii). The paper takes that step as is; a
Newton step on a quartic can overshoot, so here it is halved until g(d) <= 0 (g is exact and
cheap), which makes the relaxed objective non-increasing — the one liberty taken, so that
"converged" means something. R itself is never stored (see :func:`_sweep`): an update costs
O(n + q) and memory is S's 8 n^2 bytes (160 MB for the 4,500 training images of a Fashion-MNIST
bench). Large problems use a numba build of the same sweep when numba is installed.

Stage 2 trains a network to predict the targets: :class:`CNNHLoss`, binary cross-entropy of
sigmoid(u) against (H + 1) / 2 for the batch's items (the classification variant CNNH+ is not
built). Stage 1 runs when the objective is built; the targets and the map from dataset index to
target row are buffers, so they travel with the checkpoint. The image network is ours (the same
backbone as every deep method of a bench), not the paper's, so a comparison isolates the objective.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from dnnh.losses.base import Objective
from dnnh.similarity import similarity_pm1

#: Coordinate updates per sweep above which the numba kernel (when installed) pays for its compile.
NUMBA_MIN_UPDATES = 50_000


def similarity_matrix(labels: np.ndarray) -> np.ndarray:
    """S in {-1, 1}^{n x n}: 1 when two items share a class (multi-label: share any label).

    >>> similarity_matrix(np.array([0, 0, 1])).tolist()
    [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return np.where(labels[:, None] == labels[None, :], 1.0, -1.0)
    if labels.ndim == 2:
        return similarity_pm1((labels > 0).astype(np.float64))
    raise ValueError(f"labels must be 1-D class ids or a 2-D 0/1 matrix, got shape {labels.shape}")


def _sweep(Ht: np.ndarray, S: np.ndarray, G: np.ndarray, order: np.ndarray) -> float:
    """Update the entries ``order`` (flat j * n + i) of H once each; returns the change of q^2 f.

    R = qS - HH^T is never formed: (Rh)_i = q S_i.h - H_i.(H^T h), and H^T h is column j of the
    Gram matrix ``G`` = H^T H (q x q), kept current in O(q) per update. So an update reads one row
    of S and writes nothing of size n: no cache-hostile column writes into an n x n matrix.
    ``Ht`` is H transposed (q, n), so a column of H is a contiguous row. Written so numba can
    compile it unchanged.
    """
    q, n = Ht.shape
    total = 0.0
    for t in range(order.shape[0]):
        j = order[t] // n
        i = order[t] % n
        h = Ht[j]
        row = Ht[:, i].copy()  # H_i, q values
        c = row[j]
        a = q * np.dot(S[i], h) - np.dot(row, G[j])  # (R h)_i
        r_ii = q * S[i, i] - np.dot(row, row)
        curv = c * c + G[j, j] - r_ii  # g''(0) / 4
        lo, hi = -1.0 - c, 1.0 - c
        if curv > 0.0:
            d = a / curv
        else:  # concave here: go to the bound in the descent direction, then back off
            d = hi if a > 0.0 else lo
        d = min(max(d, lo), hi)
        gain = 0.0
        for _ in range(40):
            gain = d ** 4 + 4.0 * c * d ** 3 + 2.0 * curv * d * d - 4.0 * a * d
            if gain <= 0.0:
                break
            d *= 0.5
        if gain > 0.0 or d == 0.0:
            continue
        diag = G[j, j] + 2.0 * c * d + d * d
        G[j, :] += d * row
        G[:, j] += d * row
        G[j, j] = diag
        h[i] = c + d
        total += gain
    return total


def _sweep_function(updates: int):
    """The numba-compiled sweep for big problems when numba is installed, else the plain one."""
    if updates < NUMBA_MIN_UPDATES:
        return _sweep
    try:
        import numba
    except ImportError:
        return _sweep
    return numba.njit(cache=False)(_sweep)


def _objective(S: np.ndarray, Ht: np.ndarray) -> float:
    """f = ||S - HH^T/q||_F^2 = ||S||^2 - (2/q) tr(H^T S H) + ||H^T H||^2 / q^2, without an n x n temporary."""
    q = Ht.shape[0]
    gram = Ht @ Ht.T
    return float(np.sum(S * S) - 2.0 / q * np.sum(Ht * (Ht @ S)) + np.sum(gram * gram) / q ** 2)


@dataclass
class TargetCodes:
    """Stage 1's result: ``codes`` in {-1, 1} (int8), the relaxed ``relaxed`` H, and ``objective``
    f = ||S - HH^T/q||_F^2 of the relaxed H before the first sweep and after each one."""

    codes: np.ndarray
    relaxed: np.ndarray
    objective: list[float] = field(default_factory=list)
    binary_objective: float = float("nan")
    sweeps: int = 0
    seconds: float = 0.0


def cnnh_target_codes(similarity: np.ndarray, bits: int, seed: int = 0, max_sweeps: int = 20,
                      tol: float = 1e-4) -> TargetCodes:
    """Approximate target codes for the n items of the n x n ``similarity`` (entries 1 / -1).

    Sweeps visit every entry of H once in a fresh random order; they stop after ``max_sweeps`` or
    when a sweep lowers f by less than ``tol`` of its value. H starts uniform in [-1, 1] (H = 0 is
    a stationary point of f, so it cannot start there), seeded by ``seed``.
    """
    S = np.asarray(similarity, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"similarity must be a square matrix, got shape {S.shape}")
    if not np.array_equal(S, S.T):
        raise ValueError("similarity must be symmetric")
    if int(bits) != bits or bits <= 0:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    n, q = S.shape[0], int(bits)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    Ht = np.ascontiguousarray(rng.uniform(-1.0, 1.0, size=(q, n)))
    G = Ht @ Ht.T
    sweep = _sweep_function(n * q)
    objective = [_objective(S, Ht)]
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 (read after the loop: the sweeps run)
        sweep(Ht, S, G, rng.permutation(n * q).astype(np.int64))
        objective.append(_objective(S, Ht))
        if objective[-2] - objective[-1] < tol * max(objective[-2], 1e-12):
            break
    codes = np.where(Ht.T >= 0, 1, -1).astype(np.int8)
    binary = _objective(S, codes.T.astype(np.float64))
    return TargetCodes(codes=codes, relaxed=Ht.T.copy(), objective=objective, binary_objective=binary,
                       sweeps=sweeps, seconds=time.perf_counter() - t0)


class CNNHLoss(Objective):
    """Mean BCE of sigmoid(u) against the stage-1 targets of the batch's items (``indices`` required)."""

    input: ClassVar[str] = "logits"

    def __init__(self, labels: np.ndarray, train_idx: np.ndarray, nbits: int, seed: int = 0,
                 max_sweeps: int = 20) -> None:
        super().__init__()
        labels = np.asarray(labels)
        train_idx = np.asarray(train_idx, dtype=np.int64)
        if train_idx.size == 0:
            raise ValueError("CNNH needs at least one training item")
        self.stage1 = cnnh_target_codes(similarity_matrix(labels[train_idx]), nbits, seed=seed,
                                        max_sweeps=max_sweeps)
        position = np.full(len(labels), -1, dtype=np.int64)
        position[train_idx] = np.arange(len(train_idx))
        self.register_buffer("targets", torch.from_numpy((self.stage1.codes.astype(np.float32) + 1) / 2))
        self.register_buffer("position", torch.from_numpy(position))

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor, query_outputs: torch.Tensor | None = None,
                indices: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Mean BCE over the batch's bits, and the number of items seen."""
        if indices is None:
            raise ValueError("the CNNH objective needs the batch's dataset indices (its targets are per item)")
        rows = self.position[indices.long()]
        # -1 (no target) points past the last row, so the gather fails instead of reading the last row: an
        # IndexError on the CPU, a device-side assertion on a GPU, where checking first would make the host wait
        rows = torch.where(rows < 0, len(self.targets), rows)
        try:
            targets = self.targets[rows]
        except IndexError as error:
            raise IndexError("the CNNH objective was given items outside the training set it has targets "
                             "for") from error
        return F.binary_cross_entropy_with_logits(outputs, targets), int(outputs.shape[0])
