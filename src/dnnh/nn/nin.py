"""Network-in-Network backbones (Lin et al. 2014) as DNNH uses them.

Every larger convolution is followed by 1x1 convolutions (ReLU after each), and the network ends
in global average pooling over 50q channels instead of fully connected layers. A preset is a list
of layer specs, so the paper's two networks and a narrow CPU one are data, not three classes.
Pooling uses ceil mode (as Caffe does) and the head pools globally, so any input of at least the
preset's ``min_size`` works, any channel count too.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

OUT = "out"  # stands for the 50q output channels in a spec


@dataclass(frozen=True)
class Preset:
    layers: tuple[tuple, ...]
    input_size: int  # the side images are resized to by default
    min_size: int
    description: str


def _conv(c: int | str, k: int, stride: int = 1, pad: int = 0) -> tuple:
    return ("conv", c, k, stride, pad)


PRESETS: dict[str, Preset] = {
    # docs/METHOD.md §2: the first author's 32x32 network (CIFAR-10, SVHN).
    "nin-cifar": Preset((
        _conv(96, 5, pad=2), _conv(96, 1), ("maxpool", 3, 2), ("dropout", 0.5),
        _conv(256, 5, pad=2), _conv(256, 1), ("maxpool", 3, 2),
        _conv(384, 1), _conv(384, 1), ("avgpool", 3, 2), ("dropout", 0.5),
        _conv(1024, 3, pad=1), _conv(OUT, 1), ("gap",),
    ), input_size=32, min_size=8, description="paper width, 32x32 inputs (docs/METHOD.md §2)"),
    # Table 1 of the paper: 256x256 images, 224 crops; avgpool 6x6 at 224 is the global pool.
    "nin-imagenet": Preset((
        _conv(96, 11, stride=4), _conv(96, 1), ("maxpool", 3, 2),
        _conv(256, 5, pad=2), _conv(256, 1), ("maxpool", 3, 2),
        _conv(384, 3, pad=1), _conv(384, 1), ("maxpool", 3, 2),
        _conv(1024, 3, pad=1), _conv(OUT, 1), ("gap",),
    ), input_size=224, min_size=67, description="paper Table 1, 224x224 crops"),
    # The nin-cifar shape at about a third of the width, for quick CPU runs.
    "nin-small": Preset((
        _conv(32, 5, pad=2), _conv(32, 1), ("maxpool", 3, 2),
        _conv(64, 5, pad=2), _conv(64, 1), ("maxpool", 3, 2), ("dropout", 0.2),
        _conv(128, 1), _conv(128, 1), ("avgpool", 3, 2),
        _conv(256, 3, pad=1), _conv(OUT, 1), ("gap",),
    ), input_size=32, min_size=8, description="narrow nin-cifar for CPU runs"),
}


def build_nin(preset: str, in_channels: int, out_channels: int, dropout: float | None = None,
              batchnorm: bool = False) -> nn.Sequential:
    """The backbone of ``preset``: images (n, in_channels, H, W) -> features (n, out_channels).

    ``dropout`` overrides the preset's dropout probabilities (0 turns dropout off). ``batchnorm``
    puts batch normalisation after every convolution but the last (not in the paper: NIN predates
    it; an option of the modern recipe).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown backbone {preset!r}; choose one of {sorted(PRESETS)}")
    if in_channels <= 0 or out_channels <= 0:
        raise ValueError(f"channel counts must be positive, got in={in_channels}, out={out_channels}")
    layers: list[nn.Module] = []
    channels = in_channels
    last_conv = max(i for i, spec in enumerate(PRESETS[preset].layers) if spec[0] == "conv")
    for i, spec in enumerate(PRESETS[preset].layers):
        kind = spec[0]
        if kind == "conv":
            _, width, k, stride, pad = spec
            width = out_channels if width == OUT else width
            conv = nn.Conv2d(channels, width, k, stride=stride, padding=pad)
            # He initialisation: PyTorch's default shrinks the signal ~3x per layer, and after the
            # eleven layers of a NIN the features no longer tell images apart (codes collapse).
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)] if batchnorm and i < last_conv \
                else [conv, nn.ReLU(inplace=True)]
            channels = width
        elif kind == "maxpool":
            layers.append(nn.MaxPool2d(spec[1], stride=spec[2], ceil_mode=True))
        elif kind == "avgpool":
            layers.append(nn.AvgPool2d(spec[1], stride=spec[2], ceil_mode=True))
        elif kind == "dropout":
            layers.append(nn.Dropout(spec[1] if dropout is None else dropout))
        elif kind == "gap":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)
