"""The test-side MAP reference, the label helper and the pixel features, on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.testing.reference import brute_force_map
from dnnh.baselines import label_matrix, pixel_features


def test_brute_force_map_on_a_hand_worked_example():
    # Query code 00; database codes 01, 00, 11, 00 -> distances 1, 0, 2, 0 -> ranking (ties by index)
    # items 1, 3, 0, 2. Relevant: items 0 and 3 -> at ranks 2 and 3: AP = (1/2 + 2/3) / 2 = 7/12.
    q = np.array([[0, 0]], dtype=np.uint8)
    db = np.array([[0, 1], [0, 0], [1, 1], [0, 0]], dtype=np.uint8)
    assert brute_force_map(q, db, np.array([5]), np.array([5, 6, 6, 5])) == pytest.approx(7 / 12)
    # A query with no relevant item counts as 0 in the mean.
    two = np.vstack([q, q])
    assert brute_force_map(two, db, np.array([5, 9]), np.array([5, 6, 6, 5])) == pytest.approx(7 / 24)
    # Multi-label: relevant = share a label; item 2 shares label 1 with the query -> rank 4: AP
    # over items 0 (rank 3) and 2 (rank 4) is (1/3 + 2/4) / 2.
    Yq = np.array([[1, 1, 0]])
    Ydb = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    assert brute_force_map(q, db, Yq, Ydb) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_label_matrix_one_hot_and_multi_hot():
    np.testing.assert_array_equal(label_matrix(np.array([7, 3, 7]), 3), [[0, 1], [1, 0], [0, 1]])
    np.testing.assert_array_equal(label_matrix(np.array([[1, 0], [1, 1]], dtype=bool), 2), [[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="one row per sample"):
        label_matrix(np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="1-D class ids or a 2-D"):
        label_matrix(np.zeros((2, 2, 2)), 2)


def test_pixel_features_scale_uint8_to_unit_floats_and_refuse_other_dtypes():
    images = np.zeros((3, 4, 5, 2), dtype=np.uint8)
    images[1, 0, 0, 1] = 255
    images[2, 3, 4, 0] = 51
    F = pixel_features(images)
    assert F.dtype == np.float32 and F.shape == (3, 40)
    assert F[1, 1] == 1.0 and F[2, 4 * 5 * 2 - 2] == pytest.approx(0.2) and F.sum() == pytest.approx(1.2)
    with pytest.raises(TypeError, match="uint8.*float64"):
        pixel_features(images.astype(np.float64))
