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
from dnnh.nn.backbones import BACKBONES, build_backbone
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
        if self.backbone not in PRESETS and self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {sorted(PRESETS) + sorted(BACKBONES)}")
        object.__setattr__(self, "in_channels", int(self.in_channels))
        if self.backbone in BACKBONES and self.in_channels not in (1, 3):
            raise ValueError(f"{self.backbone} takes 3-channel images (grayscale is repeated into 3), got "
                             f"in_channels={self.in_channels}")
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
    """Backbone + hash head: images -> approximate codes in [0, 1].

    A NIN backbone ends in 50q channels, which divide-and-encode cuts into q slices. A pretrained
    backbone (:data:`dnnh.nn.BACKBONES`) ends in its own width D (512, 2048, 4096, 768, 384): the
    fully connected head maps D to q directly; divide-and-encode first maps D to 50q with a linear
    layer and a ReLU (``projection``), the role NIN's last 1x1 convolution plays, then slices. The
    ReLU matters: a linear map followed by the slices' dot products would be one linear map, the
    fully connected head again. ``backbone`` holds the pretrained network alone, so its
    state_dict is the weights file's keys. Grayscale images (``in_channels=1``) are repeated into
    the three channels the weights' first layer takes.
    """

    def __init__(self, nbits: int, backbone: str, in_channels: int, encoder: str, eps: float | None,
                 dropout: float | None = None, batchnorm: bool = False, code_norm: bool = False) -> None:
        super().__init__()
        features = FEATURES_PER_BIT * nbits
        self.projection: nn.Module | None = None
        self.repeat_gray = backbone in BACKBONES and in_channels == 1
        if backbone in BACKBONES:
            self.backbone = build_backbone(backbone)
            width = self.backbone.out_features
            if encoder == "divide-and-encode":
                self.projection = nn.Sequential(nn.Linear(width, features), nn.ReLU(inplace=True))
            else:
                features = width
        else:
            self.backbone = build_nin(backbone, in_channels, features, dropout=dropout, batchnorm=batchnorm)
        head = DivideAndEncode if encoder == "divide-and-encode" else FullyConnectedEncoder
        self.head = head(features, nbits, eps=eps, code_norm=code_norm)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's output, as fp32 even under bf16 autocast: the hash head (sigmoid, the threshold's
        band around 0.5, the cut at 0.5) is where bf16's 8-bit mantissa would flip bits, and it is cheap."""
        if self.repeat_gray:
            images = images.expand(-1, 3, -1, -1)
        features = self.backbone(images).float()
        if self.projection is not None:
            with torch.autocast(images.device.type, enabled=False):
                features = self.projection(features)
        return features

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
        spec = BACKBONES.get(self.backbone_name)
        return spec.min_size if spec is not None else PRESETS[self.backbone_name].min_size

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (n, {self.in_channels}, H, W), got {tuple(images.shape)}")
        if min(images.shape[2:]) < self.min_size:
            raise ValueError(f"{self.backbone_name} needs images of at least {self.min_size}x{self.min_size}, "
                             f"got {images.shape[2]}x{images.shape[3]}")
        spec = BACKBONES.get(self.backbone_name)
        if spec is not None and (images.shape[2] % spec.multiple_of or images.shape[3] % spec.multiple_of):
            raise ValueError(f"{self.backbone_name} needs sides that are multiples of {spec.multiple_of}, "
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
