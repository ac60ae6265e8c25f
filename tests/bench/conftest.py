"""Shared set-up for the bench tests: digits and one BLAS thread (tiny settings: bench_testutils).

BLAS is pinned to one thread, as in the baseline tests: on a busy 2-core machine spinning BLAS
threads make small products far slower.
"""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from dnnh.data.digits import load_digits


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def digits():
    return load_digits()
