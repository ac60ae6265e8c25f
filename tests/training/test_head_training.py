"""``train --freeze-backbone`` with a weights file: the head trains on cached features, the run is an ordinary
run, and its codes on raw images equal the cached path's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.backbones import seeded_weights_file
from support.interrupts import Interrupt, stop_after

from dnnh.config import LOSSES, TrainConfig
from dnnh.data.splits import paper_split
from dnnh.encoder import Encoder
from dnnh.runs import Run
from dnnh.training.feature_cache import read_entry
from dnnh.training.head_training import feature_key, head_outputs, run_features, split_codes, uses_feature_cache
from dnnh.training.train import train

TINY = dict(nbits=12, input_size=32, batch_size=40, per_class=4, num_workers=0, threads=1, precision="fp32")


@pytest.fixture(scope="module")
def few(digits):
    return paper_split(digits.labels, queries_per_class=2, train_per_class=10, val_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    return seeded_weights_file(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module: the features of digits are computed once."""
    return tmp_path_factory.mktemp("features")


def frozen(resnet18_file, cache, **changes) -> TrainConfig:
    return TrainConfig(backbone="resnet18", backbone_weights=str(resnet18_file), freeze_backbone=True,
                       feature_cache=str(cache), **{**TINY, "epochs": 2, **changes})


def test_a_frozen_backbone_with_a_file_trains_from_the_cache_without_augmentation(resnet18_file, cache):
    config = frozen(resnet18_file, cache)
    assert config.augment == "none" and uses_feature_cache(config)
    assert not uses_feature_cache(config.replace(augment="crop-flip"))  # asked for: the image path, augmented
    assert not uses_feature_cache(config.replace(erase=0.5))
    assert TrainConfig(backbone="resnet18", freeze_backbone=True).augment == "crop-flip"  # no file: images
    assert "feature_cache" not in config.decisive()  # where features are kept decides nothing


@pytest.mark.parametrize("loss,encoder,separate", [("triplet", "divide-and-encode", False), ("orthohash", "fc", False),
                                                   ("dpsh", "divide-and-encode", True)])
def test_codes_from_cached_features_equal_dnnh_encode_on_raw_images(loss, encoder, separate, digits, few,
                                                                      resnet18_file, cache, tmp_path):
    lines = []
    config = frozen(resnet18_file, cache, loss=loss, encoder=encoder, separate_query_network=separate)
    train(config, digits, few, tmp_path / "run", progress=False, log=lines.append)
    assert "resnet18: weights from resnet18-test.pth" in lines[0] and "frozen" in lines[0]
    assert any("training the hash head on cached features" in line for line in lines)
    run = Run.open(tmp_path / "run")
    saved = run.load_model()  # an ordinary run: the file's backbone plus the trained head
    file_state = torch.load(resnet18_file)
    assert all(torch.equal(v, file_state[k]) for k, v in saved.net.backbone.state_dict().items())
    table = run_features(run, digits)
    cached_q, cached_db = split_codes(saved, table, digits, few)
    raw_q, raw_db = Encoder.from_run(run).encode_split(digits, few)
    for role, cached, raw in (("query", cached_q, raw_q), ("database", cached_db, raw_db)):
        assert np.array_equal(cached.ids, raw.ids)
        differ = cached.bits != raw.bits
        # Same features (the encoder's own inference path) and the same fused head: bit for bit. A bit whose
        # output lies within 1e-5 of 0.5 may go either way where summation order differs; none did here.
        outputs = head_outputs(saved, table.rows(getattr(few, role)), role)
        assert not differ.any() or np.abs(outputs[differ] - 0.5).max() < 1e-5
        assert differ.sum() == 0


@pytest.mark.parametrize("loss", LOSSES)
def test_every_objective_trains_its_head_on_the_cache(loss, digits, few, resnet18_file, cache, tmp_path):
    config = frozen(resnet18_file, cache, loss=loss, epochs=1)
    result = train(config, digits, few, tmp_path / "run", progress=False)
    record = result.history[0]
    assert np.isfinite(record["loss"]) and record["images_per_s"] > 0 and "val_map" in record
    torch.manual_seed(config.seed)  # the head's initial weights: the image path's seed and build order
    fresh = Run.open(tmp_path / "run").new_model()
    head = [k for k in fresh.state_dict() if k.startswith(("net.head.", "net.projection."))]
    assert head and any(not torch.equal(fresh.state_dict()[k], result.model.state_dict()[k]) for k in head)
    trained = result.model.net.backbone.state_dict()
    assert all(torch.equal(v, torch.load(resnet18_file)[k]) for k, v in trained.items())


def test_resume_continues_exactly(digits, few, resnet18_file, cache, tmp_path):
    config = frozen(resnet18_file, cache, epochs=3)
    whole = train(config, digits, few, tmp_path / "whole", progress=False)
    with pytest.raises(Interrupt):
        train(config, digits, few, tmp_path / "cut", progress=False, on_epoch_end=stop_after(1))
    resumed = train(config, digits, few, tmp_path / "cut", resume=True, progress=False)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    assert resumed.best_epoch == whole.best_epoch and resumed.best_val_map == whole.best_val_map
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_in_another_cache_folder_computes_the_features_there(digits, few, resnet18_file, cache, tmp_path):
    config = frozen(resnet18_file, cache, epochs=2)
    with pytest.raises(Interrupt):
        train(config, digits, few, tmp_path / "run", progress=False, on_epoch_end=stop_after(1))
    moved = config.replace(feature_cache=str(tmp_path / "elsewhere"))
    result = train(moved, digits, few, tmp_path / "run", resume=True, progress=False)
    assert len(result.history) == 2
    assert read_entry(tmp_path / "elsewhere", feature_key(result.run)) is not None


def test_crop_flip_asked_for_trains_on_images_and_caches_nothing(digits, few, resnet18_file, tmp_path):
    config = frozen(resnet18_file, tmp_path / "features", augment="crop-flip", epochs=1)
    train(config, digits, few, tmp_path / "run", progress=False)
    assert not (tmp_path / "features").exists()


def test_dnnh_train_scores_from_the_cache_and_dnnh_eval_on_raw_images_agrees(resnet18_file, cache, tmp_path, capsys):
    from dnnh.cli.main import main

    run = tmp_path / "run"
    flags = ["--data", "digits", "--queries-per-class", "2", "--train-per-class", "10", "--val-fraction", "0.2",
             "--backbone", "resnet18", "--backbone-weights", str(resnet18_file), "--freeze-backbone",
             "--feature-cache", str(cache), "--input-size", "32", "--bits", "12", "--epochs", "1", "--batch-size", "40",
             "--threads", "1", "--workers", "0", "--precision", "fp32"]
    assert main(["train", "--run", str(run), *flags]) == 0
    trained = capsys.readouterr().out
    assert "scoring the codes of the cached features" in trained
    assert main(["eval", "--run", str(run)]) == 0  # codes without an origin: eval encodes the raw images
    evaluated = capsys.readouterr().out
    map_line = [line for line in trained.splitlines() if line.strip().startswith("MAP")]
    assert map_line and map_line[0] in evaluated


def test_a_diverged_head_stops_and_keeps_its_last_checkpoint(digits, few, resnet18_file, cache, tmp_path, monkeypatch):
    from dnnh.errors import DivergedError
    from dnnh.training import head_training

    real = head_training._epoch

    def diverging(setup, state, epoch, progress):
        record = real(setup, state, epoch, progress)
        return {**record, "loss": float("nan")} if epoch == 1 else record

    monkeypatch.setattr(head_training, "_epoch", diverging)
    with pytest.raises(DivergedError, match="training stopped in epoch 2: the loss became nan"):
        train(frozen(resnet18_file, cache, epochs=3), digits, few, tmp_path / "run", progress=False)
    assert Run.open(tmp_path / "run").has_checkpoint  # epoch 1's
    assert torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=True)["epoch"] == 0
