"""Shallow hashing baselines as scikit-learn transformers: ``fit(X[, y])``, ``transform(X)`` -> 0/1 codes.

Unsupervised: LSH, PCAH, ITQ, SH. Supervised: CCA-ITQ, KSH, SDH. ``SHALLOW_METHODS`` maps the
names used on the command line and in result tables to the classes; ``make_shallow`` builds one.
"""

from __future__ import annotations

from dnnh.baselines.base import ShallowHasher, label_matrix
from dnnh.baselines.cca_itq import CCAITQ
from dnnh.baselines.features import pixel_features
from dnnh.baselines.itq import ITQ
from dnnh.baselines.ksh import KSH
from dnnh.baselines.lsh import LSH
from dnnh.baselines.pcah import PCAH
from dnnh.baselines.sdh import SDH
from dnnh.baselines.sh import SH

SHALLOW_METHODS: dict[str, type[ShallowHasher]] = {
    "lsh": LSH, "pcah": PCAH, "itq": ITQ, "sh": SH, "cca-itq": CCAITQ, "ksh": KSH, "sdh": SDH,
}


def make_shallow(name: str, n_bits: int, random_state=0, **params) -> ShallowHasher:
    """A fresh estimator for method ``name`` (a key of ``SHALLOW_METHODS``) with ``n_bits`` bits.

    >>> make_shallow("itq", 16)
    ITQ(n_bits=16, random_state=0)
    """
    try:
        cls = SHALLOW_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown shallow method {name!r}; known: {sorted(SHALLOW_METHODS)}") from None
    return cls(n_bits=n_bits, random_state=random_state, **params)


__all__ = ["CCAITQ", "ITQ", "KSH", "LSH", "PCAH", "SDH", "SH", "SHALLOW_METHODS", "ShallowHasher",
           "label_matrix", "make_shallow", "pixel_features"]
