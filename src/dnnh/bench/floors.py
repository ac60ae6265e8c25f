"""The floor lines of a table: retrieval without hashing, scored with the hashed methods' MAP.

``--floors`` adds, beside the methods x bits table, the MAP of ranking the database by a real-valued
similarity of unhashed inputs:

- ``pixels-cosine`` and ``pixels-euclidean``: raw pixels in [0, 1] (what the shallow baselines read
  in a bench without a frozen backbone), by cosine similarity and by Euclidean distance;
- ``features-cosine`` (a bench whose backbone is frozen with a weights file): the cached pooled
  features the heads and the shallow methods read, by cosine similarity.

What a hashing method at q bits loses against its own inputs is the gap to these lines. The
conventions are :mod:`dnnh.metrics`' (docs/METHOD.md §9): every database item ranked, ties by
database index (a stable sort of the scores), AP over the relevant items of the ranking (of the
top K with ``--topk``, divided by the relevant items retrieved there), a query with nothing
relevant scoring 0; under protocol unseen, both figures (the held-out classes' database items,
and the whole database). On 0/1 vectors the Euclidean floor ranks exactly as Hamming distance
does, which tests/bench/test_bench_features.py checks against :func:`dnnh.metrics.mean_average_precision`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dnnh.atomic import atomic_write_text
from dnnh.bench.report import utc_now

FLOOR_FORMAT = "dnnh-bench-floor/1"
#: Queries ranked at once (bounds the (queries x database) score matrix: 64 x 70,000 floats = 18 MB).
QUERY_CHUNK = 64
METRICS = ("cosine", "euclidean")


def _relevant(query_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """(n_query, n_db) relevance: same class, or (multi-hot rows) a label in common."""
    if query_labels.ndim == 1:
        return query_labels[:, None] == db_labels[None, :]
    return (query_labels.astype(np.float32) @ db_labels.T.astype(np.float32)) > 0


def ranking_map(query: np.ndarray, database: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray,
                metric: str = "cosine", topk: int | None = None) -> float:
    """MAP (MAP@K with ``topk``) of ranking ``database`` rows for each ``query`` row by ``metric``.

    Cosine: descending cosine similarity; Euclidean: ascending distance; ties by database index.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    q = np.asarray(query, dtype=np.float32)
    d = np.asarray(database, dtype=np.float32)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    else:
        d_sq = np.einsum("ij,ij->i", d, d)
    k = len(d) if topk is None else min(int(topk), len(d))
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    aps = np.zeros(len(q))
    for start in range(0, len(q), QUERY_CHUNK):
        chunk = q[start:start + QUERY_CHUNK]
        # A key to sort ascending: -similarity, or the squared distance less the query's own norm (a
        # per-query constant, which leaves the order as it is).
        key = -(chunk @ d.T) if metric == "cosine" else d_sq[None, :] - 2.0 * (chunk @ d.T)
        order = np.argsort(key, axis=1, kind="stable")[:, :k]  # stable: equal scores by database index
        relevant = np.take_along_axis(_relevant(ql[start:start + QUERY_CHUNK], dl), order, axis=1)
        hits = np.cumsum(relevant, axis=1)
        precision_at_hits = np.where(relevant, hits / np.arange(1, k + 1), 0.0)
        found = hits[:, -1]
        aps[start:start + len(chunk)] = np.divide(precision_at_hits.sum(axis=1), found,
                                                  out=np.zeros(len(chunk)), where=found > 0)
    return float(aps.mean()) if len(aps) else float("nan")


def floor_names(frozen: bool) -> list[str]:
    """The floors a bench computes: raw pixels always, the frozen features when it has them."""
    return ["pixels-cosine", "pixels-euclidean"] + (["features-cosine"] if frozen else [])


def run_floors(ctx: Any, log: Callable[[str], None]) -> list[dict]:
    """Every floor of ``ctx`` (a :class:`~dnnh.bench.runners.BenchContext`): read back when finished, else scored.

    Records go to ``OUT/raw/floor_<name>.json``; one made on other inputs (another weights file, say)
    is refused, as a bench entry is.
    """
    table = ctx.frozen_features()
    out = []
    for name in floor_names(table is not None):
        inputs, metric = name.rsplit("-", 1)
        signature = {"kind": "floor", "inputs": "pixels" if inputs == "pixels" else ctx.features_identity(),
                     "metric": metric, "topk": ctx.topk}
        path = ctx.out / "raw" / f"floor_{name}.json"
        record = _read(path, signature, ctx)
        if record is None:
            t0 = time.perf_counter()
            parts = ctx.pixels() if inputs == "pixels" else ctx.shallow_inputs()
            record = {"format": FLOOR_FORMAT, "floor": name, "signature": signature, "split_sha256": ctx.split_sha256,
                      **_score(parts, ctx, metric), "seconds": time.perf_counter() - t0, "finished": utc_now()}
            atomic_write_text(path, json.dumps(record, indent=2))
        log(f"floor {name}: MAP {record['map']:.4f}"
            + (f", unseen@all {record['map_all_classes']:.4f}" if record.get("map_all_classes") is not None else ""))
        out.append(record)
    return out


def _score(parts: dict[str, np.ndarray], ctx: Any, metric: str) -> dict[str, float | None]:
    """The split's figure (and protocol unseen's second one), as :func:`dnnh.evaluation.score_split` scores codes."""
    labels, split = ctx.dataset.labels, ctx.split
    q_labels, db_labels = labels[split.query], labels[split.database]
    database = parts["database"]
    result: dict[str, float | None] = {"map_all_classes": None}
    if split.held_out is not None:
        keep = np.isin(db_labels, split.held_out)
        result["map"] = ranking_map(parts["query"], database[keep], q_labels, db_labels[keep], metric, ctx.topk)
        result["map_all_classes"] = ranking_map(parts["query"], database, q_labels, db_labels, metric, ctx.topk)
    else:
        result["map"] = ranking_map(parts["query"], database, q_labels, db_labels, metric, ctx.topk)
    return result


def _read(path: Path, signature: dict, ctx: Any) -> dict | None:
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if record.get("format") != FLOOR_FORMAT:
        raise ValueError(f"{path} is not a floor record (format {record.get('format')!r}); move it away")
    if record["split_sha256"] != ctx.split_sha256 or record["signature"] != json.loads(json.dumps(signature)):
        raise ValueError(f"{path} was scored on another split or other inputs than this run asks for; "
                         f"delete {path.name} to score it again")
    return record


__all__ = ["FLOOR_FORMAT", "floor_names", "ranking_map", "run_floors"]
