"""Fine-tuning a pretrained backbone: its weights file, its learning rate, what stays frozen, its pipeline.

The field's recipe (DeepHash-pytorch, HashNet): an ImageNet network's pooled features under a new
hash layer, the pretrained layers trained at a tenth of the new layer's learning rate
(``backbone_lr``), at 224 px: resize to 256, random 224 crop and flip for training, the centre
crop for evaluation, ImageNet's mean and std. Everything here is keyed off
:class:`~dnnh.config.TrainConfig`'s pretrained fields; for the NIN presets each function is the
identity of what training did before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from dnnh.errors import ChangedDataError

from dnnh.config import TrainConfig
from dnnh.data.pipeline import Preprocessing
from dnnh.nn import BACKBONES, DNNH, PRESETS
from dnnh.nn.backbones import load_backbone_weights

#: DeepHash-pytorch's 256 -> 224: the resize side is 8/7 of the crop.
RESIZE_RATIO = 8 / 7


def image_sizes(config: TrainConfig) -> tuple[int, int | None]:
    """(input_size, resize): the network's input side and the side images are resized to before the crop."""
    if not config.pretrained:
        return config.input_size or PRESETS[config.backbone].input_size, None
    spec = BACKBONES[config.backbone]
    size = config.input_size or spec.input_size
    default = size + spec.crop_padding if spec.crop_padding is not None else int(round(size * RESIZE_RATIO))
    return size, config.resize or default


def make_preprocessing(config: TrainConfig, dataset, train_idx: np.ndarray) -> Preprocessing:
    """The data's own statistics for the NIN presets; the pretrained weights' for a pretrained backbone.

    Grayscale data (the network repeats it into three channels) is normalised with the mean of the
    three channel statistics, a single channel standing for all three.
    """
    size, resize = image_sizes(config)
    if not config.pretrained:
        return Preprocessing.fit(dataset, train_idx, size, seed=config.seed)
    spec = BACKBONES[config.backbone]
    channels = int(dataset.channels)
    mean, std = list(spec.mean), list(spec.std)
    if channels == 1:
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    return Preprocessing.fixed(size, channels, mean, std, resize=resize)


def _nets(model: DNNH) -> list[nn.Module]:
    return [net for net in (model.net, model.query_net) if net is not None]


def backbone_parameters(model: DNNH) -> list[nn.Parameter]:
    return [p for net in _nets(model) for p in net.backbone.parameters()]


def load_pretrained(model: DNNH, config: TrainConfig) -> str:
    """The config's weights file into every backbone of ``model``; a line saying where the backbone started.

    The file must still be the one the config recorded (same sha256): a run says what it started from.
    """
    if not config.pretrained:
        return ""
    recorded = config.backbone_weights
    if recorded is None:
        return f"{config.backbone}: random initialisation (no --backbone-weights file)"
    path = Path(recorded["path"])
    for net in _nets(model):
        loaded = load_backbone_weights(net.backbone, config.backbone, path)
    if loaded.sha256 != recorded["sha256"]:
        raise ChangedDataError(f"{path} changed since the run recorded it (sha256 {recorded['sha256'][:12]}..., now "
                         f"{loaded.sha256[:12]}...); pass the file again to start a new run from it")
    return (f"{config.backbone}: weights from {loaded.name} ({loaded.size:,} bytes, sha256 {loaded.sha256[:16]}...)"
            f"{', frozen' if config.freeze_backbone else f', learning rate x{config.backbone_lr:g}'}")


def parameter_groups(model: DNNH, objective: nn.Module, config: TrainConfig) -> tuple[list[dict], list[nn.Parameter]]:
    """The optimizer's parameter groups (the backbone at ``backbone_lr`` times the rate) and the trainable list.

    A frozen backbone's parameters stop requiring gradients and are left out of the optimizer.
    """
    everything = [*model.parameters(), *objective.parameters()]
    if not config.pretrained:
        return [{"params": everything}], everything
    backbone = backbone_parameters(model)
    ids = {id(p) for p in backbone}
    rest = [p for p in everything if id(p) not in ids]
    if config.freeze_backbone:
        for p in backbone:
            p.requires_grad_(False)
        return [{"params": rest, "lr": config.lr}], rest
    return ([{"params": rest, "lr": config.lr}, {"params": backbone, "lr": config.lr * config.backbone_lr}],
            rest + backbone)


def set_train_modes(model: DNNH, config: TrainConfig) -> None:
    """After ``model.train()``: a frozen backbone in eval mode; with ``freeze_bn``, its batch norms."""
    if not config.pretrained or not (config.freeze_backbone or config.freeze_bn):
        return
    for net in _nets(model):
        if config.freeze_backbone:
            net.backbone.eval()
            continue
        for m in net.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


__all__ = ["RESIZE_RATIO", "backbone_parameters", "image_sizes", "load_pretrained", "make_preprocessing",
           "parameter_groups", "set_train_modes"]
