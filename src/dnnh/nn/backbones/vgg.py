"""VGG-16 (with and without batch norm) and AlexNet with torchvision's parameter names and shapes.

``features`` holds the convolutions at torchvision's indices (``features.0``, ``features.3`` ...)
and ``classifier`` the fully connected layers up to the second 4096-unit layer and its ReLU,
at torchvision's indices too (``classifier.0``/``.3`` for VGG, ``.1``/``.4`` for AlexNet): the
features DeepHash-pytorch puts its hash layer on. The 1000-way ``classifier.6`` is left out.
Dropout stays where torchvision has it (a no-op in eval mode, so encoding is deterministic).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class _Truncated(nn.Module):
    """features -> adaptive average pool -> flatten -> classifier (truncated): (N, 4096)."""

    out_features = 4096

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG(_Truncated):
    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers.append(nn.Conv2d(channels, int(v), 3, padding=1))
            layers += [nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            channels = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


class AlexNet(_Truncated):
    """torchvision's AlexNet (the "one weird trick" variant: 64-192-384-256-256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True))


def vgg16() -> VGG:
    return VGG(batch_norm=False)


def vgg16_bn() -> VGG:
    return VGG(batch_norm=True)


def alexnet() -> AlexNet:
    return AlexNet()
