"""scikit-learn's digits: 1,797 real 8x8 grayscale images (values 0..16), the embedded default."""

from __future__ import annotations

import numpy as np

from dnnh.data.dataset import ArrayDataset


def load_digits() -> ArrayDataset:
    """Digits as uint8 (1797, 8, 8, 1), scaled from 0..16 to 0..255, labels 0..9."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return ArrayDataset(images=images, labels=bunch.target.astype(np.int64), name="digits",
                        class_names=[str(c) for c in range(10)])
