"""Fixtures of the service tests: a tiny digits run per test module."""

from __future__ import annotations

import pytest

from dnnh.cli.main import main

#: A digits run that trains in seconds (12 bits, 8x8 inputs, 2 epochs).
TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
        "--input-size", "8", "--epochs", "2", "--batch-size", "40", "--threads", "1", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A freshly trained run, one per test module (each module may change its store)."""
    run = tmp_path_factory.mktemp("serve-run") / "run"
    assert main(["train", "--run", str(run), *TINY]) == 0
    return run
