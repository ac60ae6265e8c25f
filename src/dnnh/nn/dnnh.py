"""The DNNH model: a shared NIN sub-network, then divide-and-encode (or the FC ablation).

One network serves the three images of a triplet (they are simply three rows of a batch). The
blog's variant, ``separate_query_network=True``, gives queries (anchors) their own copy of the
network while positives and negatives share the other one; ``encode(images, role="query")`` then
uses the query copy.

A model is rebuilt from its :class:`ModelConfig` (``DNNH.from_config``), which every run directory
stores beside the weights, the way nanoGPT's checkpoints carry ``model_args``: nothing about the
architecture has to be remembered or re-derived by the code that loads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
from torch import nn

from dnnh.checks import accept_old_bits_keyword, check_nbits
from dnnh.nn.encoders import DivideAndEncode, FullyConnectedEncoder
from dnnh.nn.nin import PRESETS, build_nin

FEATURES_PER_BIT = 50
ENCODERS = ("divide-and-encode", "fc")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a DNNH model's architecture (its weights' shapes and its forward)."""

    nbits: int
    backbone: str = "nin-small"
    in_channels: int = 3
    encoder: str = "divide-and-encode"
    eps: float | None = 0.1
    separate_query_network: bool = False
    dropout: float | None = None
    batchnorm: bool = False
    code_norm: bool = False  # batch norm of the hash layer's q outputs (OrthoHash's codes); codes = sign of it

    def __post_init__(self) -> None:
        """The one check of an architecture: :class:`DNNH` is built from a config that passed it."""
        object.__setattr__(self, "nbits", check_nbits(self.nbits))
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.backbone not in PRESETS:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {sorted(PRESETS)}")
        object.__setattr__(self, "in_channels", int(self.in_channels))
        object.__setattr__(self, "separate_query_network", bool(self.separate_query_network))
        object.__setattr__(self, "batchnorm", bool(self.batchnorm))
        object.__setattr__(self, "code_norm", bool(self.code_norm))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**data)


ModelConfig.__init__ = accept_old_bits_keyword(ModelConfig.__init__)  # type: ignore[method-assign]


class HashNetwork(nn.Module):
    """Backbone + hash head: images -> approximate codes in [0, 1]."""

    def __init__(self, nbits: int, backbone: str, in_channels: int, encoder: str, eps: float | None,
                 dropout: float | None = None, batchnorm: bool = False, code_norm: bool = False) -> None:
        super().__init__()
        features = FEATURES_PER_BIT * nbits
        self.backbone = build_nin(backbone, in_channels, features, dropout=dropout, batchnorm=batchnorm)
        head = DivideAndEncode if encoder == "divide-and-encode" else FullyConnectedEncoder
        self.head = head(features, nbits, eps=eps, code_norm=code_norm)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's output, as fp32 even under bf16 autocast: the hash head (sigmoid, the threshold's
        band around 0.5, the cut at 0.5) is where bf16's 8-bit mantissa would flip bits, and it is cheap."""
        return self.backbone(images).float()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        features = self._features(images)
        with torch.autocast(images.device.type, enabled=False):
            return self.head.logits(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self._features(images)
        with torch.autocast(images.device.type, enabled=False):
            return self.head(features)


class DNNH(nn.Module):
    """``forward(images)`` -> approximate codes in [0, 1]^nbits; ``encode(images)`` -> 0/1 bits (uint8).

    ``nbits`` is the code length (``DNNH(48)``; ``bits=`` and ``.bits``, its old name, still work).
    eps is the threshold's half band (None: no threshold, the ablation). The default 0.1 is discussed in docs/RESULTS.md next to
    the other values measured.
    """

    @accept_old_bits_keyword
    def __init__(self, nbits: int, backbone: str = "nin-small", in_channels: int = 3,
                 encoder: str = "divide-and-encode", eps: float | None = 0.1,
                 separate_query_network: bool = False, dropout: float | None = None,
                 batchnorm: bool = False, code_norm: bool = False) -> None:
        super().__init__()
        c = self.config = ModelConfig(nbits=nbits, backbone=backbone, in_channels=in_channels, encoder=encoder,
                                      eps=eps, separate_query_network=separate_query_network, dropout=dropout,
                                      batchnorm=batchnorm, code_norm=code_norm)  # the one check of these arguments
        self.nbits, self.backbone_name, self.in_channels = c.nbits, c.backbone, c.in_channels
        self.net = HashNetwork(c.nbits, c.backbone, c.in_channels, c.encoder, c.eps, c.dropout, c.batchnorm,
                               c.code_norm)
        self.query_net = (HashNetwork(c.nbits, c.backbone, c.in_channels, c.encoder, c.eps, c.dropout, c.batchnorm,
                                      c.code_norm)
                          if c.separate_query_network else None)

    @classmethod
    def from_config(cls, config: ModelConfig | Mapping[str, Any]) -> "DNNH":
        """The model ``config`` describes (a :class:`ModelConfig` or its dict), freshly initialised."""
        c = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        return cls(**c.to_dict())

    @property
    def bits(self) -> int:
        """The code length under its old name (read ``nbits``)."""
        return self.nbits

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
        """Binary codes: bit k is 1 when output k > 0.5 (docs/METHOD.md §6). Runs in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return (self.forward(images, role=role) > 0.5).to(torch.uint8)
        finally:
            self.train(was_training)
