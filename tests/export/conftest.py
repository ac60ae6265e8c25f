"""Tiny trained runs for the export and engine tests, each trained once per session (about a second).

``tiny_run(channels, bits)``: digits at 8x8, 2 epochs, a separate query network (so both roles
are different networks). channels=1 is plain digits (a run that reloads its data by name);
channels=3 tints each digit with its own colour plus noise, so the three channels differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.data.dataset import ArrayDataset
from dnnh.data.splits import paper_split
from dnnh.runs import Run
from dnnh.training.config import TrainConfig
from dnnh.training.train import train


def rgb_digits(digits) -> ArrayDataset:
    rng = np.random.default_rng(0)
    gray = digits.images[..., 0].astype(np.float64)
    tint = rng.uniform(0.3, 1.0, (len(gray), 1, 1, 3))
    noise = rng.normal(0, 8, gray.shape + (3,))
    images = np.clip(gray[..., None] * tint + noise, 0, 255).astype(np.uint8)
    return ArrayDataset(images, digits.labels, name="rgb-digits")


@pytest.fixture(scope="session")
def tiny_run(digits, tmp_path_factory):
    cache: dict[tuple[int, int], tuple[Run, ArrayDataset]] = {}

    def make(channels: int, bits: int) -> tuple[Run, ArrayDataset]:
        if (channels, bits) not in cache:
            dataset = digits if channels == 1 else rgb_digits(digits)
            split = paper_split(dataset.labels, queries_per_class=5, train_per_class=30, val_fraction=0.2, seed=0)
            config = TrainConfig.from_recipe("modern", bits=bits, input_size=8, epochs=2, batch_size=40, per_class=4,
                                             num_workers=0, threads=1, separate_query_network=True)
            path = tmp_path_factory.mktemp(f"run-c{channels}-b{bits}") / "run"
            train(config, dataset, split, path, progress=False)
            cache[channels, bits] = (Run.open(path), dataset)
        return cache[channels, bits]

    return make
