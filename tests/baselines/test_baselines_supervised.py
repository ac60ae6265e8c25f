"""CCA-ITQ, KSH and SDH: they must use the labels, which random hyperplanes cannot."""

from __future__ import annotations

import numpy as np
import pytest

from support.problems import multilabel_clusters, separable_clusters
from dnnh.testing.reference import brute_force_map
from dnnh.baselines import CCAITQ, KSH, LSH, SDH

SUPERVISED = {
    "cca-itq": lambda seed: CCAITQ(n_bits=16, random_state=seed),
    "ksh": lambda seed: KSH(n_bits=16, n_anchors=100, n_labeled=300, max_iter=50, random_state=seed),
    "sdh": lambda seed: SDH(n_bits=16, n_anchors=300, random_state=seed),
}


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(0)
    X_train, y_train = separable_clusters(60, rng)
    X_db, y_db = separable_clusters(60, rng)
    X_q, y_q = separable_clusters(8, rng)
    lsh = LSH(n_bits=16, random_state=0).fit(X_train)
    lsh_map = brute_force_map(lsh.transform(X_q), lsh.transform(X_db), y_q, y_db)
    return X_train, y_train, X_db, y_db, X_q, y_q, lsh_map


@pytest.mark.parametrize("name", sorted(SUPERVISED))
def test_supervised_beats_lsh_on_separable_clusters_with_noise_dimensions(name, clusters):
    # The classes are separable in 5 of 25 dimensions; the other 20 carry only noise. A method that
    # learns from the labels can ignore the noise, so its codes should rank nearly perfectly.
    X_train, y_train, X_db, y_db, X_q, y_q, lsh_map = clusters
    est = SUPERVISED[name](0).fit(X_train, y_train)
    sup_map = brute_force_map(est.transform(X_q), est.transform(X_db), y_q, y_db)
    assert sup_map > 0.85, sup_map
    assert sup_map > lsh_map + 0.2, (sup_map, lsh_map)


@pytest.mark.parametrize("name", sorted(SUPERVISED))
def test_one_hot_matrix_and_class_ids_give_the_same_codes(name, clusters):
    X_train, y_train, X_db, *_ = clusters
    a = SUPERVISED[name](3).fit(X_train, y_train).transform(X_db)
    b = SUPERVISED[name](3).fit(X_train, np.eye(5, dtype=np.int8)[y_train]).transform(X_db)
    assert np.array_equal(a, b)


def test_class_ids_need_not_be_small_integers(clusters):
    X_train, y_train, X_db, *_ = clusters
    names = np.array(["cat", "dog", "emu", "fox", "gnu"])[y_train]
    a = CCAITQ(n_bits=8, random_state=0).fit(X_train, y_train).transform(X_db)
    b = CCAITQ(n_bits=8, random_state=0).fit(X_train, names).transform(X_db)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(SUPERVISED))
def test_multi_label_y_is_accepted_and_used(name):
    # Similar = share a label. Items with two labels sit between the two label centres, and the noise
    # dimensions again hide that structure from random hyperplanes.
    rng = np.random.default_rng(1)
    X_train, Y_train = multilabel_clusters(300, rng)
    X_db, Y_db = multilabel_clusters(300, rng)
    X_q, Y_q = multilabel_clusters(40, rng)
    est = SUPERVISED[name](0).fit(X_train, Y_train)
    sup_map = brute_force_map(est.transform(X_q), est.transform(X_db), Y_q, Y_db)
    lsh = LSH(n_bits=16, random_state=0).fit(X_train)
    lsh_map = brute_force_map(lsh.transform(X_q), lsh.transform(X_db), Y_q, Y_db)
    assert sup_map > lsh_map + 0.1, (sup_map, lsh_map)


def test_cca_itq_correlations_are_decreasing_and_vanish_beyond_the_label_rank(clusters):
    # One-hot labels of 5 classes span 4 dimensions once centred: only 4 canonical correlations can
    # be non-zero, and with separable classes those are close to 1.
    X_train, y_train, *_ = clusters
    est = CCAITQ(n_bits=8, random_state=0).fit(X_train, y_train)
    corr = est.correlations_
    assert np.all(np.diff(corr) <= 1e-12)
    assert np.all(corr[:4] > 0.9) and np.all(corr[4:] < 1e-3)
    np.testing.assert_allclose(est.rotation_.T @ est.rotation_, np.eye(8), atol=1e-10)
    assert np.all(np.diff(est.quantization_loss_) <= 1e-9 * est.quantization_loss_[0])


def test_ksh_code_inner_products_follow_the_label_similarity(clusters):
    # KSH fits H H^T to n_bits * S on its labelled subset: same-class pairs should get large positive
    # code inner products, different-class pairs negative ones.
    X_train, y_train, *_ = clusters
    est = SUPERVISED["ksh"](0).fit(X_train, y_train)
    idx = est.labeled_indices_
    H = 2.0 * est.transform(X_train[idx]) - 1.0
    G = H @ H.T
    same = y_train[idx][:, None] == y_train[idx][None, :]
    assert G[same].mean() > 8 and G[~same].mean() < 0
    assert est.anchors_.shape == (100, X_train.shape[1]) and est.coefs_.shape == (100, 16)


def test_sdh_objective_never_increases_and_codes_classify(clusters):
    X_train, y_train, *_ = clusters
    est = SDH(n_bits=16, n_anchors=300, n_iter=6, random_state=0).fit(X_train, y_train)
    obj = est.objective_
    assert obj.shape == (6,)
    assert np.all(np.diff(obj) <= 1e-9 * obj[0])
    # The linear classifier W on the codes of the training items recovers their classes.
    B = 2.0 * est.transform(X_train) - 1.0
    assert np.mean((B @ est.classifier_).argmax(axis=1) == y_train) > 0.95


def test_kernel_methods_cap_anchors_and_labelled_subset_at_the_sample_count(clusters):
    X_train, y_train, *_ = clusters
    ksh = KSH(n_bits=4, n_anchors=10_000, n_labeled=10_000, max_iter=5, random_state=0).fit(X_train, y_train)
    assert ksh.anchors_.shape[0] == len(X_train) and len(ksh.labeled_indices_) == len(X_train)
    sdh = SDH(n_bits=4, n_anchors=10_000, random_state=0).fit(X_train, y_train)
    assert sdh.anchors_.shape[0] == len(X_train) and sdh.projection_.shape == (len(X_train) + 1, 4)


def test_ksh_smoothed_objective_gradient_matches_finite_differences():
    from scipy.optimize import check_grad

    from dnnh.baselines.ksh import _smooth_objective

    rng = np.random.default_rng(0)
    K = rng.normal(size=(30, 6))
    S = np.where(rng.random((30, 30)) < 0.5, 1.0, -1.0)
    R = (S + S.T) / 2
    f = lambda a: _smooth_objective(a, K, R, 1.0)[0]  # noqa: E731
    g = lambda a: _smooth_objective(a, K, R, 1.0)[1]  # noqa: E731
    a = rng.normal(size=6) * 0.3
    assert check_grad(f, g, a) < 1e-5 * max(1.0, np.linalg.norm(g(a)))


def test_ksh_optimisation_does_not_lose_to_the_spectral_start(clusters):
    # Step 3 of the paper keeps the better of the two, so the first bit's h^T S h (same residue r S
    # for both runs: same anchors and labelled subset by seed) cannot drop when optimisation is on.
    X_train, y_train, *_ = clusters

    def first_bit_fit(max_iter):
        est = KSH(n_bits=1, n_anchors=100, n_labeled=300, max_iter=max_iter, random_state=0).fit(X_train, y_train)
        h = 2.0 * est.transform(X_train[est.labeled_indices_])[:, 0] - 1.0
        yl = y_train[est.labeled_indices_]
        return h @ np.where(yl[:, None] == yl[None, :], 1.0, -1.0) @ h

    assert first_bit_fit(50) >= first_bit_fit(0)
