"""CNNH: stage-1 target codes (coordinate descent on ||S - HH^T/q||^2) and the stage-2 objective."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.losses import cnnh
from dnnh.losses.cnnh import _sweep, cnnh_target_codes, similarity_matrix


def brute_objective(S: np.ndarray, H: np.ndarray) -> float:
    q = H.shape[1]
    return float(np.sum((S - H @ H.T / q) ** 2))


def test_similarity_matrix_single_and_multi_label():
    assert similarity_matrix(np.array([2, 0, 2])).tolist() == [[1, -1, 1], [-1, 1, -1], [1, -1, 1]]
    multi = np.array([[1, 0, 1], [0, 1, 1], [0, 1, 0], [0, 0, 0]])
    assert similarity_matrix(multi).tolist() == [[1, 1, -1, -1], [1, 1, 1, -1], [-1, 1, 1, -1], [-1, -1, -1, -1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_similarity_gives_one_code_per_block(seed):
    labels = np.repeat(np.arange(4), 6)[np.random.default_rng(seed).permutation(24)]
    S = similarity_matrix(labels)
    result = cnnh_target_codes(S, 8, seed=seed)
    for c in range(4):
        assert len({tuple(row) for row in result.codes[labels == c]}) == 1, c  # similar items: equal codes
    assert len({tuple(row) for row in result.codes}) == 4  # dissimilar blocks: different codes
    assert set(np.unique(result.codes)) <= {-1, 1} and result.codes.dtype == np.int8
    assert all(b <= a + 1e-9 for a, b in zip(result.objective, result.objective[1:]))  # never increases
    assert result.objective[-1] < 0.5 * result.objective[0]
    assert result.binary_objective == pytest.approx(brute_objective(S, result.codes.astype(float)))
    assert result.objective[-1] == pytest.approx(brute_objective(S, result.relaxed))


def test_two_blocks_reach_the_exact_optimum():
    # With two classes, codes c and -c reproduce S exactly: f = 0.
    S = similarity_matrix(np.array([0, 1, 0, 0, 1, 1, 0]))
    result = cnnh_target_codes(S, 6, seed=3)
    assert result.binary_objective == 0.0
    assert np.array_equal(result.codes[0], -result.codes[1])


def reference_step(S: np.ndarray, H: np.ndarray, i: int, j: int) -> float:
    """The documented rule from the definitions: Newton step on the quartic g (or the bound in the
    descent direction where g is concave), clipped to [-1, 1], halved until g(d) <= 0."""
    q = H.shape[1]
    R = q * S - H @ H.T

    def g(d: float) -> float:  # q^2 f after moving H_ij by d, minus before, by brute force
        moved = H.copy()
        moved[i, j] += d
        return q * q * (brute_objective(S, moved) - brute_objective(S, H))

    a, curv = (R @ H[:, j])[i], H[i, j] ** 2 + H[:, j] @ H[:, j] - R[i, i]
    lo, hi = -1 - H[i, j], 1 - H[i, j]
    d = a / curv if curv > 0 else (hi if a > 0 else lo)
    d = min(max(d, lo), hi)
    while g(d) > 1e-12:
        d /= 2
    return d


def test_one_coordinate_update_follows_the_documented_rule_and_its_gain_is_exact():
    rng = np.random.default_rng(5)
    n, q = 30, 4
    S = similarity_matrix(rng.integers(0, 3, n))
    H = rng.uniform(-1, 1, (n, q))
    newton_steps = 0
    for flat in rng.permutation(n * q)[:60]:
        j, i = divmod(int(flat), n)
        R = q * S - H @ H.T
        plain_newton = (R @ H[:, j])[i] / (H[i, j] ** 2 + H[:, j] @ H[:, j] - R[i, i])
        d = reference_step(S, H, i, j)
        Ht = np.ascontiguousarray(H.T)
        gain = _sweep(Ht, S, Ht @ Ht.T, np.array([flat], dtype=np.int64))
        new = Ht.T.copy()
        assert new[i, j] == pytest.approx(H[i, j] + d, abs=1e-12)
        assert np.array_equal(np.delete(new.ravel(), i * q + j), np.delete(H.ravel(), i * q + j))
        assert gain == pytest.approx(q * q * (brute_objective(S, new) - brute_objective(S, H)), abs=1e-9)
        assert gain <= 0 and np.abs(new).max() <= 1.0
        newton_steps += bool(d == pytest.approx(plain_newton))
        H = new
    assert 10 < newton_steps < 60  # both plain Newton steps and clipped or shortened ones were checked


def test_numba_build_matches_the_plain_sweep(monkeypatch):
    S = similarity_matrix(np.repeat(np.arange(3), 5))
    plain = cnnh_target_codes(S, 6, seed=1, max_sweeps=3)
    monkeypatch.setattr(cnnh, "NUMBA_MIN_UPDATES", 0)
    compiled = cnnh_target_codes(S, 6, seed=1, max_sweeps=3)
    assert np.array_equal(plain.codes, compiled.codes)
    assert np.allclose(plain.relaxed, compiled.relaxed) and np.allclose(plain.objective, compiled.objective)
