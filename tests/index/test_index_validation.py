"""Boundary checks: wrong dtype, width, padding bits, k, radius, ids or strategy say what was expected."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dnnh.codes import pack_bits
from dnnh.index import HammingIndex, available_kernels


@pytest.fixture()
def index() -> HammingIndex:
    ix = HammingIndex(12)
    ix.add(pack_bits(np.eye(12, dtype=np.uint8)))
    return ix


def test_codes_must_be_packed_uint8(index: HammingIndex) -> None:
    with pytest.raises(TypeError, match=r"packed uint8 codes of shape \(n, 2\).*got dtype int64"):
        index.add(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="got dtype bool"):
        index.add(np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="got list"):
        index.add([[0, 0]])
    with pytest.raises(TypeError, match="queries must be packed uint8"):
        index.search(np.zeros((1, 2), dtype=np.float32), 1)


def test_wrong_width_names_expected_bytes(index: HammingIndex) -> None:
    with pytest.raises(ValueError, match=r"codes must have shape \(n, 2\) for 12-bit codes \(2 bytes each\), got shape \(4, 3\)"):
        index.add(np.zeros((4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 2\).*got shape \(1, 8\)"):
        index.search(np.zeros((1, 8), dtype=np.uint8), 1)
    with pytest.raises(ValueError, match=r"got shape \(2,\)"):
        index.range_search(np.zeros(2, dtype=np.uint8), 1)


def test_padding_bits_must_be_zero(index: HammingIndex) -> None:
    bad = np.array([[0, 0b0001_0000]], dtype=np.uint8)  # bit 12 of a 12-bit code
    with pytest.raises(ValueError, match="set bits above bit 11"):
        index.add(bad)
    with pytest.raises(ValueError, match="set bits above bit 11"):
        index.search(bad, 1)


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_bad_k(index: HammingIndex, k: object) -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        index.search(pack_bits(np.zeros((1, 12), np.uint8)), k)


@pytest.mark.parametrize("radius", [-1, 2.0, None])
def test_bad_radius(index: HammingIndex, radius: object) -> None:
    with pytest.raises(ValueError, match="radius must be an integer >= 0"):
        index.range_search(pack_bits(np.zeros((1, 12), np.uint8)), radius)


def test_radius_beyond_nbits_returns_everything(index: HammingIndex) -> None:
    lims, d, i = index.range_search(pack_bits(np.zeros((1, 12), np.uint8)), 1000)
    assert lims.tolist() == [0, 12] and (d == 1).all() and i.tolist() == list(range(12))


def test_bad_ids(index: HammingIndex) -> None:
    codes = pack_bits(np.zeros((2, 12), np.uint8))
    with pytest.raises(ValueError, match=r"one id per code \(2\), got shape \(3,\)"):
        index.add(codes, ids=np.arange(3))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float64"):
        index.add(codes, ids=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="ids must be >= 0"):
        index.add(codes, ids=np.array([-1, 3]))
    with pytest.raises(TypeError, match="ids to remove must be an integer"):
        index.remove(np.array([0.5]))
    assert index.ntotal == 12


def test_bad_strategy_kernel_and_nbits(index: HammingIndex) -> None:
    q = pack_bits(np.zeros((1, 12), np.uint8))
    with pytest.raises(ValueError, match="strategy must be one of"):
        index.range_search(q, 1, strategy="lsh")
    with pytest.raises(ValueError, match="for search"):
        index.search(q, 1, strategy="mih")
    with pytest.raises(ValueError, match="kernel must be one of"):
        HammingIndex(12, kernel="gpu")
    for nbits in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="nbits must be a positive integer"):
            HammingIndex(nbits)


def test_forced_probe_too_large_is_refused() -> None:
    ix = HammingIndex(128)
    ix.add(np.zeros((1, 16), np.uint8))
    with pytest.raises(ValueError, match="use 'mih' or 'scan'"):
        ix.range_search(np.zeros((1, 16), np.uint8), 10, strategy="probe")
    assert ix.range_search(np.zeros((1, 16), np.uint8), 10, strategy="mih")[0].tolist() == [0, 1]


def test_works_with_numpy_alone() -> None:
    """Without numba and FAISS the index picks numpy and answers the same."""
    code = """
import sys
sys.modules['numba'] = None
sys.modules['faiss'] = None
import numpy as np
from dnnh.index import HammingIndex, available_kernels
assert available_kernels() == ['numpy'], available_kernels()
ix = HammingIndex(24)
assert ix.kernel == 'numpy'
rng = np.random.default_rng(0)
codes = rng.integers(0, 256, (200, 3), dtype=np.uint8)
ix.add(codes)
d, i = ix.search(codes[:3], 5)
assert (i[:, 0] == [0, 1, 2]).all() and (d[:, 0] == 0).all()
try:
    HammingIndex(24, kernel='numba')
except ImportError as exc:
    assert "pip install numba" in str(exc)
else:
    raise AssertionError('numba kernel should be refused')
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_available_kernels_here() -> None:
    assert available_kernels()[-1] == "numpy"


def test_engine_is_still_accepted_as_the_kernels_old_name() -> None:
    """Code written before the rename (engine=, .engine, available_engines) keeps working."""
    from dnnh.index import available_engines
    from dnnh.index.live import LiveIndex

    assert available_engines() == available_kernels()
    index = HammingIndex(12, engine="numpy")
    assert index.kernel == index.engine == "numpy"
    assert HammingIndex(12, kernel="numpy", engine="numpy").kernel == "numpy"
    with pytest.raises(ValueError, match="give kernel= only"):
        HammingIndex(12, kernel="numba", engine="numpy")
    with pytest.raises(ValueError, match="kernel must be one of"):
        HammingIndex(12, engine="gpu")
    assert LiveIndex(12, engine="numpy").new_index().kernel == "numpy"
