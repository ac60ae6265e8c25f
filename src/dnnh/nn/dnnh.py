"""The DNNH model: a shared NIN sub-network, then divide-and-encode (or the FC ablation).

One network serves the three images of a triplet (they are simply three rows of a batch). The
blog's variant, ``separate_query_network=True``, gives queries (anchors) their own copy of the
network while positives and negatives share the other one; ``encode(images, role="query")`` then
uses the query copy.
"""

from __future__ import annotations

import torch
from torch import nn

from dnnh.nn.encoders import DivideAndEncode, FullyConnectedEncoder
from dnnh.nn.nin import PRESETS, build_nin

FEATURES_PER_BIT = 50
ENCODERS = ("divide-and-encode", "fc")


class HashNetwork(nn.Module):
    """Backbone + hash head: images -> approximate codes in [0, 1]."""

    def __init__(self, bits: int, backbone: str, in_channels: int, encoder: str, eps: float | None,
                 dropout: float | None = None, batchnorm: bool = False) -> None:
        super().__init__()
        features = FEATURES_PER_BIT * bits
        self.backbone = build_nin(backbone, in_channels, features, dropout=dropout, batchnorm=batchnorm)
        head = DivideAndEncode if encoder == "divide-and-encode" else FullyConnectedEncoder
        self.head = head(features, bits, eps=eps)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head.logits(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class DNNH(nn.Module):
    """``forward(images)`` -> approximate codes in [0, 1]^bits; ``encode(images)`` -> 0/1 bits (uint8).

    eps is the threshold's half band (None: no threshold, the ablation). The default 0.1 is
    discussed in docs/RESULTS.md next to the other values measured.
    """

    def __init__(self, bits: int, backbone: str = "nin-small", in_channels: int = 3,
                 encoder: str = "divide-and-encode", eps: float | None = 0.1,
                 separate_query_network: bool = False, dropout: float | None = None,
                 batchnorm: bool = False) -> None:
        super().__init__()
        if int(bits) != bits or bits <= 0:
            raise ValueError(f"bits must be a positive integer, got {bits!r}")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if backbone not in PRESETS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(PRESETS)}")
        self.bits, self.backbone_name, self.in_channels = int(bits), backbone, int(in_channels)
        self.net = HashNetwork(self.bits, backbone, in_channels, encoder, eps, dropout, batchnorm)
        self.query_net = (HashNetwork(self.bits, backbone, in_channels, encoder, eps, dropout, batchnorm)
                          if separate_query_network else None)

    @property
    def min_size(self) -> int:
        return PRESETS[self.backbone_name].min_size

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (n, {self.in_channels}, H, W), got {tuple(images.shape)}")
        if min(images.shape[2:]) < self.min_size:
            raise ValueError(f"{self.backbone_name} needs images of at least {self.min_size}x{self.min_size}, "
                             f"got {images.shape[2]}x{images.shape[3]}")

    def _net(self, role: str) -> HashNetwork:
        return self.query_net if (role == "query" and self.query_net is not None) else self.net

    def forward(self, images: torch.Tensor, role: str = "database") -> torch.Tensor:
        self._check(images)
        return self._net(role)(images)

    def logits(self, images: torch.Tensor, role: str = "database") -> torch.Tensor:
        """Pre-sigmoid outputs u: what the pairwise and central losses train on; bit = u > 0."""
        self._check(images)
        return self._net(role).logits(images)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, role: str = "database") -> torch.Tensor:
        """Binary codes: bit k is 1 when output k > 0.5 (DESIGN.md item 6). Runs in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return (self.forward(images, role=role) > 0.5).to(torch.uint8)
        finally:
            self.train(was_training)
