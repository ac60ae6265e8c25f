"""Issue 36.8: a config training cannot take is refused before the run folder exists (library and command line).

Before: every refusal of a backbone's input size or a weights file came after Run.create, leaving config.json,
split.json and .dnnh.lock in a folder that held no run."""

from __future__ import annotations

import pytest
import torch

from dnnh.cli.main import main
from dnnh.config import TrainConfig
from dnnh.errors import DnnhError
from dnnh.training.train import train

TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12", "--epochs", "1",
        "--batch-size", "40", "--threads", "1", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Small weights files that resnet18 must refuse: one with a NaN, one that fits nothing."""
    folder = tmp_path_factory.mktemp("weights")
    torch.save({"conv1.weight": torch.tensor([float("nan")])}, folder / "nan.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, folder / "foreign.pth")
    return folder


CASES = [
    (["--backbone", "nin-imagenet", "--input-size", "32"], "nin-imagenet needs images of at least 67x67"),
    (["--backbone", "resnet18", "--input-size", "8"], "resnet18 needs images of at least 32x32"),
    (["--backbone", "vit_small_patch16_224", "--input-size", "40"], "needs sides that are multiples of 16"),
    (["--backbone", "resnet18", "--input-size", "32", "--backbone-weights", "{w}/nan.pth"],
     "tensor conv1.weight holds NaN values"),
    (["--backbone", "resnet18", "--input-size", "32", "--backbone-weights", "{w}/foreign.pth"],
     "foreign.pth does not fit resnet18"),
]


@pytest.mark.parametrize("flags, says", CASES)
@pytest.mark.parametrize("folder", ["absent", "empty"])
def test_a_refused_run_leaves_no_folder_and_no_file(tmp_path, capsys, weights, flags, says, folder):
    run = tmp_path / "run"
    if folder == "empty":  # a folder the user made for the run: left as it was
        run.mkdir()
    flags = [f.format(w=weights) for f in flags]
    assert main(["train", "--run", str(run), *TINY, *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert (not run.exists()) if folder == "absent" else list(run.iterdir()) == []


def test_the_library_refuses_before_it_creates_the_run_folder(tmp_path, digits, small_split):
    config = TrainConfig.from_recipe("modern", nbits=12, backbone="nin-imagenet", input_size=32, epochs=1,
                                     num_workers=0, threads=1, device="cpu")
    with pytest.raises(DnnhError, match="at least 67x67"):
        train(config, digits, small_split, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
