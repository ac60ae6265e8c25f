"""Fine-tuning a pretrained backbone: the file's weights, learning-rate groups, frozen layers and statistics,
the 224 px pipeline's crops, and every objective on a pretrained backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dnnh.config import LOSSES, PRETRAINED_BACKBONES, TrainConfig
from dnnh.data.augment import random_crop
from dnnh.data.pipeline import Preprocessing
from dnnh.data.splits import paper_split
from dnnh.nn import BACKBONES, DNNH, build_backbone
from dnnh.training.finetune import image_sizes, parameter_groups
from dnnh.training.objectives import make_objective
from dnnh.training.train import train

@pytest.fixture(scope="module")
def few(digits):
    """10 training images a class (2 of them validation): a resnet18 epoch in a second or two."""
    return paper_split(digits.labels, queries_per_class=2, train_per_class=10, val_fraction=0.2, seed=0)


TINY = dict(nbits=12, input_size=32, epochs=1, batch_size=40, per_class=4, num_workers=0, threads=1, precision="fp32")


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    state = build_backbone("resnet18").state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(state, path)
    return path


def test_registry_names_agree_with_the_config():
    assert tuple(BACKBONES) == PRETRAINED_BACKBONES


def test_frozen_backbone_keeps_the_files_weights_and_the_run_records_the_file(digits, few, resnet18_file, tmp_path):
    lines = []
    config = TrainConfig(backbone="resnet18", backbone_weights=str(resnet18_file), freeze_backbone=True,
                         feature_cache=str(tmp_path / "features"), **TINY)  # trains on cached features (issue 32)
    result = train(config, digits, few, tmp_path / "run", progress=False, log=lines.append)
    state = torch.load(resnet18_file)
    saved = result.run.load_model()
    assert all(torch.equal(v, state[k]) for k, v in saved.net.backbone.state_dict().items())
    assert not torch.equal(saved.net.head.weight, DNNH.from_config(result.run.model_config).net.head.weight)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["backbone_weights"]
    assert recorded["name"] == "resnet18-test.pth" and recorded["size"] == resnet18_file.stat().st_size
    assert len(recorded["sha256"]) == 64 and "resnet18: weights from resnet18-test.pth" in lines[0]
    assert result.run.prep.resize == 37 and result.run.prep.input_size == 32  # 8/7 of the crop, as 256/224


def test_random_initialisation_is_said_and_backbone_lr_groups(digits, few, tmp_path):
    lines = []
    config = TrainConfig(backbone="resnet18", **TINY)
    train(config, digits, few, tmp_path / "run", progress=False, log=lines.append)
    assert lines[0] == "resnet18: random initialisation (no --backbone-weights file)"
    assert config.backbone_lr == 1.0 and TrainConfig(backbone="resnet18", backbone_weights=None).augment == "crop-flip"
    pretrained = config.replace(backbone_lr=0.1)
    model = DNNH(12, backbone="resnet18")
    groups, trainable = parameter_groups(model, torch.nn.Module(), pretrained)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.net.backbone.parameters()}
    assert len(trainable) == len(list(model.parameters()))


def test_freeze_bn_keeps_statistics_and_trains_the_rest(digits, few, resnet18_file, tmp_path):
    config = TrainConfig(backbone="resnet18", backbone_weights=str(resnet18_file), freeze_bn=True, **TINY)
    result = train(config, digits, few, tmp_path / "run", progress=False)
    state, trained = torch.load(resnet18_file), result.model.net.backbone.state_dict()
    assert torch.equal(trained["bn1.running_mean"], state["bn1.running_mean"])
    assert not torch.equal(trained["conv1.weight"], state["conv1.weight"])


def test_pretrained_fields_are_refused_on_nin_and_sizes_resolve():
    with pytest.raises(ValueError, match="backbone_weights, freeze_backbone apply to the pretrained backbones"):
        TrainConfig(backbone="nin-small", backbone_weights="x.pth", freeze_backbone=True)
    with pytest.raises(ValueError, match="backbone weights file .*missing.pth does not exist"):
        TrainConfig(backbone="resnet50", backbone_weights="missing.pth")
    assert image_sizes(TrainConfig(backbone="resnet50")) == (224, 256)
    assert "backbone_lr" not in TrainConfig().decisive()  # NIN configs decide what they did before


def test_centre_crop_and_random_crop():
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    prep = Preprocessing.fixed(32, 3, [0.0] * 3, [1.0] * 3, resize=40)
    x = prep(images)
    assert x.shape == (3, 3, 32, 32)
    torch.testing.assert_close(x, torch.from_numpy(images).permute(0, 3, 1, 2)[:, :, 4:36, 4:36].float() / 255)
    full = prep.uncropped()(images)
    assert full.shape == (3, 3, 40, 40) and "resize" not in Preprocessing.fixed(32, 3, [0.0], [1.0]).to_dict()
    crops = random_crop(full, torch.Generator().manual_seed(0), 32, flip=False)
    for crop, image in zip(crops, full):  # each crop is a window of its image
        windows = image.unfold(1, 32, 1).unfold(2, 32, 1)  # (C, 9, 9, 32, 32)
        assert ((windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4)) == 0).any()


@pytest.mark.parametrize("name", PRETRAINED_BACKBONES)
def test_every_backbone_trains_a_step(name):
    torch.manual_seed(0)
    size = max(32, BACKBONES[name].min_size + 1 if name == "alexnet" else 32)
    encoder = "fc" if PRETRAINED_BACKBONES.index(name) % 2 else "divide-and-encode"  # both heads, half the builds
    model = DNNH(12, backbone=name, encoder=encoder)
    logits = model.logits(torch.randn(2, 3, size, size))
    logits.sum().backward()
    assert logits.shape == (2, 12) and next(model.net.backbone.parameters()).grad is not None


@pytest.mark.parametrize("loss", LOSSES)
def test_every_objective_trains_on_a_pretrained_backbone(loss, digits, small_split):
    config = TrainConfig(backbone="resnet18", loss=loss, **TINY)
    model = DNNH.from_config(config.model_config(1))
    labels, train_idx = digits.labels, small_split.train[:40]
    objective = make_objective(config.loss, config.objective_spec(), labels, small_split.train)
    images = torch.randn(len(train_idx), 1, 32, 32)
    outputs = (model.logits if objective.input == "logits" else model)(images)
    loss_value, _ = objective(outputs, torch.from_numpy(labels[train_idx]), None, torch.from_numpy(train_idx))
    loss_value.backward()
    assert torch.isfinite(loss_value) and model.net.backbone.conv1.weight.grad is not None
