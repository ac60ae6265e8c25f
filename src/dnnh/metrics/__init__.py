"""Retrieval metrics for binary codes: MAP, precision within a Hamming radius, PR curves, precision@k.

Ranking is by Hamming distance with ties broken by database index; every convention on which
hashing papers silently differ is a named parameter (see :mod:`dnnh.metrics.retrieval`).
The plotting functions are loaded on first use, so importing the metrics does not import matplotlib.
"""

from typing import Any

from dnnh.metrics.report import RetrievalReport, retrieval_report
from dnnh.metrics.retrieval import mean_average_precision, precision_within_radius

__all__ = [
    "RetrievalReport",
    "mean_average_precision",
    "plot_map_vs_bits",
    "plot_pr_curves",
    "plot_precision_at_k",
    "precision_within_radius",
    "retrieval_report",
]


def __getattr__(name: str) -> Any:
    if name in ("plot_pr_curves", "plot_precision_at_k", "plot_map_vs_bits"):
        from dnnh.metrics import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'dnnh.metrics' has no attribute {name!r}")
