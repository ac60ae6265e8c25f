"""Shared set-up for the baseline tests.

BLAS is pinned to one thread: on a busy 2-core machine OpenBLAS's threads spin against other
processes and small matrix products get up to 100x slower.
"""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield
