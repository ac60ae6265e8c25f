"""Shared set-up for the bench tests: one BLAS thread (digits and the tiny settings: tests/conftest.py).

BLAS is pinned to one thread, as in the baseline tests: on a busy 2-core machine spinning BLAS
threads make small products far slower.
"""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield
