"""Shallow hashing baselines as scikit-learn transformers: ``fit(X[, y])``, ``transform(X)`` -> 0/1 codes.

Unsupervised: LSH, PCAH, ITQ, SH. Supervised: CCA-ITQ, KSH, SDH. ``SHALLOW_METHODS`` maps the
names used on the command line and in result tables to the classes; ``make_shallow`` builds one.

The estimators (and scikit-learn behind them) load on first use (PEP 562): the command line lists
the methods' names from :mod:`dnnh.baselines.catalog` without paying for scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dnnh.baselines.catalog import SHALLOW_CATALOG, SHALLOW_NAMES

if TYPE_CHECKING:
    from dnnh.baselines.base import ShallowHasher, label_matrix
    from dnnh.baselines.cca_itq import CCAITQ
    from dnnh.baselines.features import pixel_features
    from dnnh.baselines.itq import ITQ
    from dnnh.baselines.ksh import KSH
    from dnnh.baselines.lsh import LSH
    from dnnh.baselines.pcah import PCAH
    from dnnh.baselines.sdh import SDH
    from dnnh.baselines.sh import SH

_LAZY = {"ShallowHasher": "base", "label_matrix": "base", "pixel_features": "features",
         **{cls: module for module, cls, _ in SHALLOW_CATALOG.values()}}


def __getattr__(name: str) -> Any:
    if name == "SHALLOW_METHODS":
        methods = {key: getattr(importlib.import_module(f"dnnh.baselines.{module}"), cls)
                   for key, (module, cls, _) in SHALLOW_CATALOG.items()}
        globals()["SHALLOW_METHODS"] = methods
        return methods
    if name in _LAZY:
        return getattr(importlib.import_module(f"dnnh.baselines.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dnnh.baselines' has no attribute {name!r}")


def make_shallow(name: str, n_bits: int, random_state=0, **params) -> "ShallowHasher":
    """A fresh estimator for method ``name`` (a key of ``SHALLOW_METHODS``) with ``n_bits`` bits.

    ``n_bits`` is scikit-learn's spelling (estimator parameters), kept for the baselines.

    >>> make_shallow("itq", 16)
    ITQ(n_bits=16, random_state=0)
    """
    methods = __getattr__("SHALLOW_METHODS")
    try:
        cls = methods[name]
    except KeyError:
        raise ValueError(f"unknown shallow method {name!r}; known: {sorted(methods)}") from None
    return cls(n_bits=n_bits, random_state=random_state, **params)


__all__ = ["CCAITQ", "ITQ", "KSH", "LSH", "PCAH", "SDH", "SH", "SHALLOW_CATALOG", "SHALLOW_METHODS", "SHALLOW_NAMES",
           "ShallowHasher", "label_matrix", "make_shallow", "pixel_features"]
