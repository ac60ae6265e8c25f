"""What a training config can be refused for before its run folder exists, and the stop of a run that diverged.

A refusal after :meth:`dnnh.runs.Run.create` left ``config.json``, ``split.json`` and ``.dnnh.lock``
behind in a folder that holds no run (issue 36.8: an input size the backbone cannot take, a weights
file that does not fit it). :func:`check_before_writing` makes those refusals first, from the config
alone: the backbone's smallest side and side multiple, and the weights file read and fitted to the
backbone's shapes on the meta device. The network's own checks (:meth:`dnnh.nn.DNNH.forward`) stay as
they are; these say the same thing earlier.

:func:`check_epoch_finite` stops a run whose loss or weights became NaN or infinite, before that epoch
is checkpointed or validated, so the run keeps its last good checkpoint. The loss it reads is the
epoch's mean, already on the host; the weights are reduced to one flag on the device and read once,
so a run waits for its device once an epoch more, never once a step.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from dnnh.config import TrainConfig
from dnnh.errors import DivergedError, InputError
from dnnh.nn import BACKBONES, PRESETS
from dnnh.nn.backbones import check_backbone_weights
from dnnh.training.finetune import image_sizes


def check_before_writing(config: TrainConfig) -> None:
    """InputError/DataError for what ``config`` cannot train, found without the data or any file written."""
    size, _ = image_sizes(config)
    spec = BACKBONES.get(config.backbone)
    smallest = spec.min_size if spec is not None else PRESETS[config.backbone].min_size
    multiple = spec.multiple_of if spec is not None else 1
    if size < smallest:
        raise InputError(f"{config.backbone} needs images of at least {smallest}x{smallest}, got an input size of "
                         f"{size}; give --input-size {smallest} or more")
    if size % multiple:
        raise InputError(f"{config.backbone} needs sides that are multiples of {multiple}, got an input size of "
                         f"{size}; give --input-size {size - size % multiple or multiple}")
    weights = config.backbone_weights
    if config.pretrained and isinstance(weights, dict) and weights.get("path"):
        check_backbone_weights(config.backbone, Path(weights["path"]))


def check_epoch_finite(record: dict, model: nn.Module, last_good: int, run_dir: str | Path) -> None:
    """DivergedError (one line) when epoch ``record["epoch"]``'s mean loss or any weight is NaN or infinite.

    ``last_good``: the last epoch checkpointed (0: none); its checkpoint is what the run keeps.
    """
    loss = record["loss"]
    finite = math.isfinite(loss) and bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())
    if finite:
        return
    what = f"the loss became {loss}" if not math.isfinite(loss) else "the weights became NaN or infinite"
    kept = (f"the run keeps its checkpoint of epoch {last_good} in {run_dir}" if last_good
            else f"no epoch finished, so {run_dir} holds no checkpoint")
    raise DivergedError(f"training stopped in epoch {record['epoch']}: {what}; {kept}. A lower --lr (or margin) "
                        "usually trains")
