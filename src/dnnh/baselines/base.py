"""The shared shape of every shallow hashing baseline: a scikit-learn transformer to 0/1 codes.

Each baseline learns ``n_bits`` real-valued projections and a code bit is 1 where its projection
is positive. The base class owns everything that is the same for all of them, so a method file
holds only its own mathematics:

- ``fit`` checks ``n_bits`` and ``X`` (2-D, finite, float), turns ``y`` into a 0/1 label matrix
  for supervised methods, then calls the one hook ``_fit(X, Y, rng)``.
- ``transform`` checks that the estimator is fitted and that ``X`` has the feature count it was
  fitted on, then thresholds the hook ``_project(X)`` at zero, in row chunks so encoding 70,000
  items does not hold a (70,000, n_anchors) kernel matrix at once.

Parameters are only stored in ``__init__`` and checked in ``fit`` (scikit-learn's contract, which
keeps ``clone`` and ``set_params`` working); fitted state ends in an underscore.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

FLOAT_DTYPES = (np.float64, np.float32)

#: Rows encoded at a time by ``transform``; bounds the memory of kernel features.
TRANSFORM_CHUNK = 4096


class ShallowHasher(TransformerMixin, BaseEstimator, ABC):
    """Abstract base: ``fit(X[, y])`` learns projections, ``transform(X)`` gives uint8 0/1 codes.

    Subclasses set ``supervised`` and implement ``_fit`` and ``_project``; they may extend
    ``_check_params`` for their own parameters (call ``super()`` first).
    """

    #: True when ``fit`` needs labels ``y``.
    supervised: ClassVar[bool] = False

    n_bits: int

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit(self, X: np.ndarray, Y: np.ndarray | None, rng: np.random.RandomState) -> None:
        """Learn the fitted state from validated ``X`` (n, d) and, if supervised, 0/1 ``Y`` (n, c)."""

    @abstractmethod
    def _project(self, X: np.ndarray) -> np.ndarray:
        """Real-valued (n, n_bits) projections of validated ``X``; a bit is 1 where positive."""

    def _check_params(self, n_samples: int, n_features: int) -> None:
        """Raise ``ValueError`` naming the parameter when a parameter cannot work on this data."""
        check_int_param(self, "n_bits", low=1)

    # ---------------------------------------------------------- public API
    def fit(self, X, y=None) -> "ShallowHasher":
        """Learn the hash functions from features ``X`` (n_samples, n_features) and, if supervised, ``y``.

        ``y`` is 1-D class ids, or a 2-D 0/1 (multi-hot) matrix of shape (n_samples, n_labels); two
        items are similar when they share a label. Unsupervised methods ignore ``y``.
        """
        name = type(self).__name__
        if self.supervised and y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None: it is supervised, "
                             "fit(X, y) needs labels y (1-D class ids or a 2-D 0/1 multi-hot matrix)")
        X = validate_data(self, X, reset=True, dtype=FLOAT_DTYPES, ensure_min_samples=2)
        self._check_params(X.shape[0], X.shape[1])
        Y = label_matrix(y, X.shape[0]) if self.supervised else None
        self._fit(X, Y, check_random_state(self.random_state))
        return self

    def transform(self, X) -> np.ndarray:
        """Encode ``X`` to codes: uint8 of shape (n_samples, n_bits), each entry 0 or 1."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES)
        codes = np.empty((X.shape[0], self.n_bits), dtype=np.uint8)
        for start in range(0, X.shape[0], TRANSFORM_CHUNK):
            stop = start + TRANSFORM_CHUNK
            codes[start:stop] = self._project(X[start:stop]) > 0
        return codes

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X, y)`` then ``transform(X)``: the training set's own codes."""
        return self.fit(X, y).transform(X)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self.supervised
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = []  # codes are uint8 whatever the input dtype
        return tags


# ---------------------------------------------------------------- helpers
def check_int_param(est: BaseEstimator, name: str, low: int, high: int | None = None,
                    high_why: str = "") -> int:
    """Return ``getattr(est, name)`` if it is an integer in [low, high]; else a ValueError naming it."""
    value = getattr(est, name)
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]{high_why}"
        raise ValueError(f"{type(est).__name__}: {name} must be {allowed}, got {value!r}")
    return int(value)


def check_float_param(est: BaseEstimator, name: str, low: float, strict: bool = True,
                      allow_none: bool = False) -> float | None:
    """Return ``getattr(est, name)`` if it is a finite real > low (>= low when not strict)."""
    value = getattr(est, name)
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or (strict and value == low):
        sign = ">" if strict else ">="
        extra = " or None" if allow_none else ""
        raise ValueError(f"{type(est).__name__}: {name} must be a finite number {sign} {low}{extra}, got {value!r}")
    return float(value)


def check_choice_param(est: BaseEstimator, name: str, choices: tuple[str, ...]) -> str:
    value = getattr(est, name)
    if value not in choices:
        raise ValueError(f"{type(est).__name__}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def label_matrix(y, n_samples: int) -> np.ndarray:
    """Labels as a float64 0/1 matrix (n_samples, n_labels).

    1-D ``y`` holds class ids (any sortable values) and becomes one-hot over the sorted distinct
    ids; 2-D ``y`` must already be 0/1 (or bool) multi-hot. A 2-D column is read as one label,
    not as class ids: use a 1-D array for class ids.
    """
    arr = np.asarray(y)
    if arr.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D class ids or a 2-D 0/1 label matrix, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"y must have one row per sample of X: X has {n_samples} samples, y has {arr.shape[0]}")
    if arr.ndim == 1:
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError("y (class ids) must be finite; found NaN or infinity")
        _, inverse = np.unique(arr, return_inverse=True)
        out = np.zeros((n_samples, int(inverse.max()) + 1))
        out[np.arange(n_samples), inverse] = 1.0
        return out
    if arr.shape[1] == 0:
        raise ValueError("y as a 2-D label matrix needs at least one label column, got 0")
    if arr.dtype != np.bool_ and not np.isin(arr, (0, 1)).all():
        bad = np.setdiff1d(arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr, (0, 1))[:5]
        raise ValueError(f"y as a 2-D label matrix must hold only 0 and 1 (multi-hot); found values such as "
                         f"{bad if bad.size else 'NaN'}")
    return arr.astype(np.float64)
