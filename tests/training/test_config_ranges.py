"""Issue 36.3 for library users: every number of a TrainConfig (and a split's validation share) is finite and in
its range, checked when the config is made, before any device is looked for or file read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnnh.config import FIELD_RANGES, MAX_INPUT_SIZE, TrainConfig
from dnnh.errors import InputError

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field, value, says", [
    ("margin", NAN, "margin must be >= 0, got nan (not a finite number)"), ("margin", INF, "margin must be >= 0"),
    ("lr", 0.0, "lr must be > 0"), ("lr", NAN, "lr must be > 0"), ("weight_decay", -1e-4, "weight_decay must be >= 0"),
    ("momentum", 1.0, "momentum must be in [0, 1)"), ("eps", 0.7, "eps must be a half-width around 0.5 in [0, 0.5]"),
    ("eps_anneal", NAN, "eps_anneal must be a share of the epochs in [0, 1]"),
    ("erase", 1.5, "erase must be a probability in [0, 1], got 1.5"), ("dropout", 1.0, "dropout must be a probability"),
    ("eta", INF, "eta must be >= 0"), ("ortho_margin", NAN, "ortho_margin must be >= 0"),
    ("input_size", MAX_INPUT_SIZE + 1, f"input_size must be an image side in pixels 1..{MAX_INPUT_SIZE}"),
    ("input_size", 32.5, "input_size must be an image side"),
])
def test_a_number_out_of_range_is_refused_naming_the_field(field, value, says):
    """Before: NaN passed every `value < 0` test (margin NaN trained to exit 0 and wrote NaN into config.json)."""
    with pytest.raises(InputError) as error:
        TrainConfig(**{field: value})
    assert says in str(error.value)


def test_a_pretrained_backbone_s_numbers_are_checked_before_its_weights_file_is_read(tmp_path):
    """The ranges come first: a NaN backbone_lr is refused without the file (which does not exist) being looked at."""
    with pytest.raises(InputError, match="backbone_lr must be a multiple of the head's learning rate >= 0"):
        TrainConfig(backbone="resnet18", backbone_weights=str(tmp_path / "absent.pth"), backbone_lr=NAN)
    with pytest.raises(InputError, match="resize must be an image side"):
        TrainConfig(backbone="resnet18", resize=100_000)


def test_every_default_and_recipe_is_inside_its_ranges_and_config_json_is_strict_json():
    for recipe in ("modern", "paper"):
        config = TrainConfig.from_recipe(recipe)
        for field, interval in FIELD_RANGES.items():
            value = getattr(config, field)
            assert value is None or value in interval, (recipe, field, value)
        json.dumps(config.to_dict(), allow_nan=False)  # NaN or inf would raise: the file would not be JSON


def test_a_negative_or_nan_validation_share_is_refused_not_taken_for_none():
    """Before: a split drawn with val_fraction=-0.1 had drew no validation set without a word."""
    from dnnh.data.splits import paper_split

    labels = np.repeat(np.arange(3), 20)
    assert len(paper_split(labels, 2, 10, val_fraction=0.0).val) == 0
    for bad in (-0.1, NAN, 1.0):
        with pytest.raises(ValueError, match="val_fraction must be in"):
            paper_split(labels, 2, 10, val_fraction=bad)
