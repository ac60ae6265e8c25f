"""Index tests: FAISS on one thread (its OpenMP workers spin and crawl on a shared 2-core machine)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _faiss_one_thread():
    try:
        import faiss
    except ImportError:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
