"""Triplets mined inside a batch whose images were each encoded once.

The paper pushes three images through the network per triplet; encoding a class-balanced batch
of B images once and forming its triplets there gives O(B^3) triplets for B forward passes.
Strategies (Hermans et al. 2017; Schroff et al. 2015):
``all`` every valid (a, p, n); ``semi-hard`` those with d(a,p) < d(a,n) < d(a,p) + margin;
``hard`` those with d(a,n) <= d(a,p) (already wrongly ordered); ``batch-hard`` for each anchor
its farthest positive and its closest negative.

The miner owns its distance (pytorch-metric-learning's design): ``mine(embeddings, labels)``
measures the batch itself, so it can be paired with any loss that uses the same distance.

Two answers: :meth:`BatchTripletMiner.triplet_mask` is a (B, B, B) boolean mask, the same shape
whatever the data, computed without the host ever waiting for a GPU; :meth:`~BatchTripletMiner.mine`
gives the index lists (a, p, n) of that mask's triplets, whose length depends on the data, so on a
GPU ``nonzero`` makes the host wait for the device once a step (issue 34.8). Training on a GPU
scores the mask (:class:`dnnh.training.objectives.MaskMinedTriplets`); the CPU keeps the lists.
"""

from __future__ import annotations

import torch

from dnnh.similarity import Distance, make_distance, relevance

STRATEGIES = ("all", "semi-hard", "hard", "batch-hard")


class BatchTripletMiner:
    def __init__(self, strategy: str = "all", margin: float = 1.0, distance: Distance | str | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy, self.margin = strategy, float(margin)
        self.distance = make_distance(distance)

    def valid_mask(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, B, B) mask of valid triplets: p similar to a (p != a), n not similar to a."""
        rel = relevance(labels, labels)
        positive = rel & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        return positive[:, :, None] & ~rel[:, None, :]

    @torch.no_grad()
    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor, anchor_embeddings: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices (a, p, n) into the batch of ``embeddings`` (B, q) with ``labels``.

        ``anchor_embeddings``: the anchors' codes from a separate query network (row i is item i).
        """
        anchors = embeddings if anchor_embeddings is None else anchor_embeddings
        return self.from_matrix(self.distance.matrix(anchors.detach(), embeddings.detach()), labels)

    @torch.no_grad()
    def triplet_mask(self, embeddings: torch.Tensor, labels: torch.Tensor,
                     anchor_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """(B, B, B) boolean mask, ``mask[a, p, n]`` true for each triplet the strategy picks (see :meth:`mine`).

        Its shape is fixed by the batch, so on a GPU nothing here waits for the device.
        """
        anchors = embeddings if anchor_embeddings is None else anchor_embeddings
        return self.mask_from_matrix(self.distance.matrix(anchors.detach(), embeddings.detach()), labels)

    @torch.no_grad()
    def mask_from_matrix(self, distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mask of :meth:`triplet_mask` from the batch's (B, B) matrix in this miner's distance (or similarity)."""
        d = -distances if self.distance.is_similarity else distances  # smaller is closer from here on
        mask = self.valid_mask(labels)
        if self.strategy == "batch-hard":  # each anchor with a positive and a negative: its hardest of each
            rel = relevance(labels, labels)
            eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
            pos_d = d.masked_fill(~rel | eye, float("-inf"))
            neg_d = d.masked_fill(rel, float("inf"))
            has = torch.isfinite(pos_d.max(1).values) & torch.isfinite(neg_d.min(1).values)
            n = len(labels)
            hardest_p = torch.nn.functional.one_hot(pos_d.argmax(1), n).bool()
            hardest_n = torch.nn.functional.one_hot(neg_d.argmin(1), n).bool()
            return hardest_p[:, :, None] & hardest_n[:, None, :] & has[:, None, None]
        d_ap, d_an = d[:, :, None], d[:, None, :]
        if self.strategy == "semi-hard":
            mask &= (d_an > d_ap) & (d_an < d_ap + self.margin)
        elif self.strategy == "hard":
            mask &= d_an <= d_ap
        return mask

    @torch.no_grad()
    def from_matrix(self, distances: torch.Tensor, labels: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices (a, p, n) from the batch's (B, B) matrix: the mask's triplets, anchor by anchor.

        ``nonzero`` gives them a length that depends on the data: on a GPU the host waits for it
        (use :meth:`triplet_mask` there).
        """
        a, p, n = torch.nonzero(self.mask_from_matrix(distances, labels), as_tuple=True)
        return a, p, n
