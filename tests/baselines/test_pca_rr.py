"""PCA-RR: PCA to the code length, a seeded random orthogonal rotation, sign."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.baselines import PCAH, make_shallow
from dnnh.baselines.pca_rr import PCARR, random_rotation


def test_one_bit_splits_points_on_a_line_at_their_centre():
    # Four points on the diagonal: one principal direction, and any 1x1 rotation is +-1, so the
    # bit separates the two points below the mean from the two above (which side is 1 is the seed's).
    X = np.array([[-2.0, -2.0], [-1.0, -1.0], [1.0, 1.0], [2.0, 2.0]]) + 5.0
    codes = PCARR(n_bits=1, random_state=0).fit(X).transform(X)[:, 0]
    assert codes.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])


def test_rotation_is_orthogonal_and_keeps_distances_between_scores():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))
    model = PCARR(n_bits=12, random_state=3).fit(X)
    R = model.rotation_
    assert R.shape == (12, 12)
    np.testing.assert_allclose(R.T @ R, np.eye(12), atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(12), atol=1e-12)
    scores = model.pca_.transform(X[:5])
    before = np.linalg.norm(scores[:, None] - scores[None], axis=-1)
    after = np.linalg.norm((scores @ R)[:, None] - (scores @ R)[None], axis=-1)
    np.testing.assert_allclose(after, before, atol=1e-9)


def test_seeded_same_seed_same_codes_other_seed_other_rotation():
    X = np.random.default_rng(1).normal(size=(200, 16))
    a = make_shallow("pca-rr", 8, random_state=5).fit(X)
    b = make_shallow("pca-rr", 8, random_state=5).fit(X)
    c = make_shallow("pca-rr", 8, random_state=6).fit(X)
    assert np.array_equal(a.transform(X), b.transform(X))
    assert not np.allclose(a.rotation_, c.rotation_)


def test_the_rotation_differs_from_pcah_and_spreads_variance():
    # PCAH's bits follow the components' uneven variance; after the rotation each bit carries about
    # the same share of it (the reason the rotation helps).
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 8)) * np.array([10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05])
    pcah, rr = PCAH(n_bits=8, random_state=0).fit(X), PCARR(n_bits=8, random_state=0).fit(X)
    var_pcah = pcah.pca_.transform(X).var(axis=0)
    var_rr = (rr.pca_.transform(X) @ rr.rotation_).var(axis=0)
    assert var_pcah.max() / var_pcah.min() > 1000
    assert var_rr.max() / var_rr.min() < var_pcah.max() / var_pcah.min() / 10
    assert not np.array_equal(pcah.transform(X), rr.transform(X))


def test_random_rotation_sign_fix_makes_the_diagonal_of_r_positive():
    rng = np.random.RandomState(0)
    q = random_rotation(6, rng)
    # The sign-fixed Q is what QR of the same Gaussian gives with R's diagonal made positive.
    g = np.random.RandomState(0).standard_normal((6, 6))
    r = q.T @ g
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-12)


def test_refuses_more_bits_than_features():
    X = np.random.default_rng(0).normal(size=(50, 6))
    with pytest.raises(ValueError, match=r"PCARR: n_bits must be an integer in \[1, 6\]"):
        PCARR(n_bits=7).fit(X)
