"""Everything a results table or plot needs from one ranking pass, in one JSON-ready record.

Averaging convention for the precision-recall curve over Hamming radius: for each radius r the
ball of radius r (distance <= r) of each query gives that query a precision (relevant in ball /
ball size) and a recall (relevant in ball / relevant in database); each is then averaged over
queries (macro averaging), so every query weighs the same, as in MAP. A query with an empty ball
has precision 0 at that radius under ``empty_ball="zero"`` (the default) and is left out of that
radius's precision under ``"skip"``; a query with no relevant item at all has recall 0 under
``empty="zero"`` and is left out of recall under ``"skip"``. (DeepHash-pytorch's ``pr_curve``,
in utils/tools.py, is a curve over top-k cut-offs of the Hamming ranking, not over radius: at each
cut-off it averages precision and recall over all queries, a query without a relevant item
counting 0, as :attr:`RetrievalReport.precision_at_k` and ``empty="zero"`` do here.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

import numpy as np

from dnnh.metrics._inputs import EMPTY, NORMALIZE, TIES, check_choice, check_int, check_precision_at
from dnnh.metrics._inputs import default_precision_at
from dnnh.metrics._scan import DEFAULT_MAX_MEMORY, rank_scan
from dnnh.metrics.retrieval import average_precisions, check_common, check_topk, mean_over_queries, safe_ratio


@dataclass(frozen=True)
class RetrievalReport:
    """Retrieval quality of one code set; floats are NaN only where ``"skip"`` left nothing to average."""

    n_queries: int
    n_database: int
    nbits: int
    map: float  # over the whole database
    topk: int | None  # the K of map_at_k after clipping to the database size; None if not asked
    map_at_k: float | None
    n_no_relevant: int  # queries with no relevant item in the database (AP 0 under empty="zero")
    n_no_relevant_at_k: int | None  # queries with no relevant item in their top K
    radius: int
    precision_radius: float
    recall_radius: float
    empty_ball_fraction: float  # share of queries whose radius ball held no item at all
    pr_radius: tuple[int, ...]  # 0 .. nbits
    pr_precision: tuple[float, ...]
    pr_recall: tuple[float, ...]
    pr_empty_fraction: tuple[float, ...]
    precision_at: tuple[int, ...]
    precision_at_k: tuple[float, ...]
    normalize: str
    empty: str
    empty_ball: str
    ties: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; NaN becomes None, since JSON has no NaN."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetrievalReport":
        """Inverse of :meth:`to_dict`, so saved results can be re-plotted."""
        values = {}
        for f in fields(cls):
            v = data[f.name]
            if isinstance(v, list):
                v = tuple(float("nan") if x is None else x for x in v)
            elif v is None and (f.name in _FLOATS or (f.name == "map_at_k" and data["topk"] is not None)):
                v = float("nan")
            values[f.name] = v
        return cls(**values)


_FLOATS = {"map", "precision_radius", "recall_radius", "empty_ball_fraction"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def retrieval_report(
    query_bits: np.ndarray,
    db_bits: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    topk: int | None = None,
    radius: int = 2,
    precision_at: Iterable[int] | None = None,
    *,
    normalize: str = "retrieved",
    empty: str = "zero",
    empty_ball: str = "zero",
    ties: str = "index",
    chunk_size: int | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> RetrievalReport:
    """MAP (and MAP@K), precision/recall within ``radius``, the PR curve over radius and precision@k.

    One ranking pass serves all of them. ``precision_at`` defaults to the cut-offs among
    (1, 10, 50, 100, 500, 1000, 5000) that fit the database; an explicit k beyond it is an error.
    Conventions are those of :func:`dnnh.metrics.mean_average_precision` and
    :func:`dnnh.metrics.precision_within_radius`; the PR averaging is in this module's docstring.
    """
    for value, name, allowed in (
        (normalize, "normalize", NORMALIZE),
        (empty, "empty", EMPTY),
        (empty_ball, "empty_ball", EMPTY),
        (ties, "ties", TIES),
    ):
        check_choice(value, name, allowed)
    radius = check_int(radius, "radius", 0)
    codes, labels, chunk_size = check_common(query_bits, db_bits, query_labels, db_labels, chunk_size)
    max_memory = check_int(max_memory, "max_memory", 1)
    n_db, nbits = len(codes.db), codes.nbits
    k = check_topk(topk, n_db)
    ks = default_precision_at(n_db) if precision_at is None else check_precision_at(precision_at, n_db)
    stats = rank_scan(codes, labels, k or n_db, ks, ties, chunk_size, max_memory)

    ap, ap_defined = average_precisions(stats, at_k=False, normalize=normalize)
    map_at_k = None
    if k is not None:
        map_at_k = mean_over_queries(*average_precisions(stats, at_k=True, normalize=normalize), empty)

    precision, ball_defined = safe_ratio(stats.ball_relevant, stats.ball_size)
    recall, recall_defined = safe_ratio(stats.ball_relevant, np.repeat(stats.n_relevant[:, None], nbits + 1, axis=1))
    pr_precision = [mean_over_queries(precision[:, r], ball_defined[:, r], empty_ball) for r in range(nbits + 1)]
    pr_recall = [mean_over_queries(recall[:, r], recall_defined[:, r], empty) for r in range(nbits + 1)]
    pr_empty = np.mean(~ball_defined, axis=0)
    r = min(radius, nbits)
    hit_rate = stats.hits_at / np.asarray(ks, dtype=np.float64)

    return RetrievalReport(
        n_queries=len(codes.query),
        n_database=n_db,
        nbits=nbits,
        map=mean_over_queries(ap, ap_defined, empty),
        topk=k,
        map_at_k=map_at_k,
        n_no_relevant=int(np.sum(stats.n_relevant == 0)),
        n_no_relevant_at_k=None if k is None else int(np.sum(stats.relevant_at_k == 0)),
        radius=radius,
        precision_radius=pr_precision[r],
        recall_radius=pr_recall[r],
        empty_ball_fraction=float(pr_empty[r]),
        pr_radius=tuple(range(nbits + 1)),
        pr_precision=tuple(pr_precision),
        pr_recall=tuple(pr_recall),
        pr_empty_fraction=tuple(float(x) for x in pr_empty),
        precision_at=ks,
        precision_at_k=tuple(float(x) for x in hit_rate.mean(axis=0)),
        normalize=normalize,
        empty=empty,
        empty_ball=empty_ball,
        ties=ties,
    )
