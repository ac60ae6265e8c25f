"""Fixtures of the service tests: a tiny digits run per test module (helpers: serve_helpers.py)."""

from __future__ import annotations

import pytest

from serve_helpers import train_tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A freshly trained run, one per test module (each module may change its store)."""
    run = tmp_path_factory.mktemp("serve-run") / "run"
    train_tiny(run)
    return run
