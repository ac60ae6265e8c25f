"""Fixtures every test folder shares: the digits set and the tiny settings that make a bench take seconds.

Nothing here downloads: digits ships with scikit-learn. The slow, obviously right references
that tests (and benchmarks) check the library against are in :mod:`dnnh.testing`; the test-only
builders are in ``tests/support/`` (importable as ``support``: pyproject.toml puts ``tests`` on
pytest's ``pythonpath``).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from dnnh.data.digits import load_digits
from dnnh.data.sources import SplitSpec

#: A split of digits with 5 queries and 30 training images a class (20% of them for validation).
TINY_SPLIT = SplitSpec(queries_per_class=5, train_per_class=30, val_fraction=0.2)
#: Training options for seconds-long deep runs: 8x8 inputs, small batches, one thread, no workers.
TINY_TRAINING = {"input_size": 8, "threads": 1, "num_workers": 0, "batch_size": 40, "per_class": 4}


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def tiny_bench() -> Callable[..., dict[str, Any]]:
    """``run_bench`` keywords for a bench of seconds: ``tiny_bench(epochs=2, margin=2.0, split={...})``.

    Keywords are training options on top of :data:`TINY_TRAINING`; ``split`` holds
    :class:`SplitSpec` fields that differ from :data:`TINY_SPLIT`.
    """
    def make(*, split: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
        spec = SplitSpec(**{**TINY_SPLIT.__dict__, **(split or {})})
        return {"split": spec, "training": {**TINY_TRAINING, **training}, "progress": False,
                "log": lambda message: None}
    return make


#: A digits run that trains in seconds (12 bits, 8x8 inputs, 2 epochs), through the command line.
TINY_RUN_FLAGS = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
                  "--input-size", "8", "--epochs", "2", "--batch-size", "40", "--threads", "1", "--workers", "0",
                  "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A freshly trained run, one per test module (each module may change its store or copy its files)."""
    from dnnh.cli.main import main

    run = tmp_path_factory.mktemp("tiny-run") / "run"
    assert main(["train", "--run", str(run), *TINY_RUN_FLAGS]) == 0
    return run


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``cuda`` are skipped, saying why, where torch sees no CUDA GPU (benchmarks/gpu_check.py
    runs them on one)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch sees none here (run benchmarks/gpu_check.py on one)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
