"""Raw-pixel features for the shallow baselines.

The shallow methods take a feature matrix. On these machines there are no GIST or CNN features, so
the baselines run on raw pixels scaled to [0, 1] (the centring each method needs is done inside the
estimators, from the training data only, so nothing leaks from the database or the queries).
"""

from __future__ import annotations

import numpy as np


def pixel_features(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, H, W, C) or (n, H, W) -> float32 (n, H*W*C) in [0, 1].

    Anything but uint8 is refused rather than guessed at (is 1.0 white, or almost black?).

    >>> import numpy as np
    >>> pixel_features(np.full((2, 8, 8, 1), 255, dtype=np.uint8)).shape
    (2, 64)
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (values 0..255), got {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"images must have shape (n, H, W[, C]), got {arr.shape}")
    return arr.reshape(arr.shape[0], -1).astype(np.float32) / np.float32(255.0)
