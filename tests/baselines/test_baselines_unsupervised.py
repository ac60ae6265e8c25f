"""LSH, PCAH, ITQ, SH on problems whose right answer is known independently of the code under test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from dnnh.baselines import ITQ, LSH, PCAH, SH


def same_up_to_flip(a: np.ndarray, b: np.ndarray) -> bool:
    """Column a equals column b or its complement (a principal direction's sign is arbitrary)."""
    return bool(np.array_equal(a, b) or np.array_equal(a, 1 - b))


def agreement_up_to_flip(a: np.ndarray, b: np.ndarray) -> float:
    agree = float(np.mean(a == b))
    return max(agree, 1 - agree)


# ---------------------------------------------------------------- LSH
def test_lsh_bits_disagree_with_probability_angle_over_pi():
    # Charikar 2002: P[sign(w.u) != sign(w.v)] = angle(u, v) / pi for Gaussian w.
    X = np.random.default_rng(0).normal(size=(50, 3))
    lsh = LSH(n_bits=4000, center=False, random_state=0).fit(X)
    u = np.array([[1.0, 0.0, 0.0]])
    v = np.array([[np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0]])
    frac = np.mean(lsh.transform(u) != lsh.transform(v))
    assert abs(frac - 1 / 3) < 0.03  # sd of the estimate is sqrt(2/9 / 4000) ~ 0.0075


def test_lsh_is_reproducible_by_seed_and_seeds_differ():
    X = np.random.default_rng(0).normal(size=(200, 20))
    a = LSH(n_bits=32, random_state=1).fit(X).transform(X)
    b = LSH(n_bits=32, random_state=1).fit(X).transform(X)
    c = LSH(n_bits=32, random_state=2).fit(X).transform(X)
    assert np.array_equal(a, b)
    assert np.mean(a != c) > 0.3  # independent hyperplanes disagree on about half the bits


def test_lsh_centering_keeps_bits_balanced_on_offset_data():
    X = np.random.default_rng(0).normal(size=(2000, 10)) + 100.0
    centred = LSH(n_bits=16, random_state=0).fit(X).transform(X).mean(axis=0)
    raw = LSH(n_bits=16, center=False, random_state=0).fit(X).transform(X).mean(axis=0)
    assert np.all(np.abs(centred - 0.5) < 0.1)  # hyperplanes through the mean of symmetric data
    assert np.all((raw < 0.02) | (raw > 0.98))  # through the origin, far from the data: constant bits


# ---------------------------------------------------------------- PCAH
def test_pcah_bits_are_signs_of_the_top_principal_components():
    rng = np.random.default_rng(0)
    Q = ortho_group.rvs(6, random_state=1)
    X = (rng.normal(size=(500, 6)) * [5.0, 3.0, 2.0, 1.0, 0.5, 0.2]) @ Q.T + 7.0
    codes = PCAH(n_bits=3, random_state=0).fit(X).transform(X)
    Xc = X - X.mean(axis=0)
    vals, vecs = np.linalg.eigh(Xc.T @ Xc)
    top = vecs[:, np.argsort(vals)[::-1][:3]]
    expected = (Xc @ top > 0).astype(np.uint8)
    for k in range(3):
        assert same_up_to_flip(codes[:, k], expected[:, k]), f"bit {k}"


# ---------------------------------------------------------------- ITQ
def test_itq_rotation_is_orthogonal_and_loss_never_increases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12)) * np.linspace(3.0, 0.3, 12)
    itq = ITQ(n_bits=8, n_iter=30, random_state=0).fit(X)
    R = itq.rotation_
    assert R.shape == (8, 8)
    np.testing.assert_allclose(R.T @ R, np.eye(8), atol=1e-10)
    loss = itq.quantization_loss_
    assert loss.shape == (30,)
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    # The reported loss is the one of the codes it returns.
    V = itq.pca_.transform(X) @ R
    B = 2.0 * itq.transform(X) - 1.0
    assert np.isclose(np.sum((B - V) ** 2) / len(X), loss[-1], rtol=1e-6)


def test_itq_finds_the_rotation_that_puts_four_clusters_on_four_codes():
    # Clusters on the axes, i.e. a square turned 45 degrees: the covariance is isotropic, so PCA's axes
    # are arbitrary and the sign of a PCA direction can cut a cluster in two. The rotation with least
    # quantisation loss turns the square back so each cluster sits at one vertex of {-1, 1}^2.
    rng = np.random.default_rng(0)
    centres = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    labels = np.repeat(np.arange(4), 100)
    X = centres[labels] + rng.normal(scale=0.1, size=(400, 2))
    for seed in range(3):
        codes = ITQ(n_bits=2, random_state=seed).fit(X).transform(X)
        words = codes[:, 0] * 2 + codes[:, 1]
        per_cluster = [np.bincount(words[labels == c], minlength=4) for c in range(4)]
        assert all(h.max() == 100 for h in per_cluster), per_cluster  # each cluster gets one code
        assert len({int(h.argmax()) for h in per_cluster}) == 4  # and the four codes differ


# ---------------------------------------------------------------- SH
def box(n: int, widths, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, len(widths))) * np.asarray(widths)


def test_sh_codes_are_balanced_on_uniform_data():
    # On [0, R] each eigenfunction cos(k pi x / R) is positive on exactly half the box, whatever k.
    X = box(4000, [4.0, 1.5, 0.5, 0.2])
    means = SH(n_bits=8).fit(X).transform(X).mean(axis=0)
    assert np.all(np.abs(means - 0.5) < 0.06), means


def test_sh_picks_the_smoothest_modes_across_directions():
    # Eigenvalue (k pi / width)^2: width 4 gives 0.62, 2.47, 5.55 for k = 1, 2, 3; width 1.5 gives 4.39
    # for k = 1; width 0.5 only 39.5. So: direction 0 k=1, direction 0 k=2, direction 1 k=1, direction 0 k=3.
    X = box(3000, [4.0, 1.5, 0.5])
    sh = SH(n_bits=4).fit(X)
    assert sh.modes_.tolist() == [[1, 0, 0], [2, 0, 0], [0, 1, 0], [3, 0, 0]]
    assert np.all(np.diff(sh.eigenvalues_) > 0)
    codes = sh.transform(X)
    assert agreement_up_to_flip(codes[:, 0], (X[:, 0] < 2.0).astype(np.uint8)) > 0.97  # halves
    quarter = ((X[:, 0] < 1.0) | (X[:, 0] > 3.0)).astype(np.uint8)
    assert agreement_up_to_flip(codes[:, 1], quarter) > 0.97  # outer quarters vs middle half


@pytest.mark.parametrize("n_bits", [1, 5, 40])
def test_sh_gives_any_number_of_bits_even_beyond_the_dimension(n_bits):
    X = box(300, [3.0, 1.0])
    sh = SH(n_bits=n_bits).fit(X)
    assert sh.transform(X).shape == (300, n_bits)
    assert np.all((sh.modes_ > 0).sum(axis=1) == 1)  # one direction a bit
