"""Scoring: codes against codes, and a trained run on its own split.

Shared by ``dnnh eval``, ``dnnh train`` (which scores the run when it ends), the demo and the
bench, so every number in a table comes from the same encoding and metric code. The metric
conventions (ties by database index, AP@K over the relevant items retrieved, an empty radius
ball scoring 0, the radius inclusive) are those of :mod:`dnnh.metrics` (docs/METHOD.md §9).
"""

from __future__ import annotations

from typing import Any

from dnnh.codes import CodeSet
from dnnh.encoder import Encoder
from dnnh.locks import lock_folder
from dnnh.metrics import RetrievalReport, retrieval_report
from dnnh.runs import Run


def score_codes(query: CodeSet, database: CodeSet, topk: int | None = None, radius: int = 2) -> RetrievalReport:
    """The retrieval report of labelled query codes against labelled database codes."""
    if query.nbits != database.nbits:
        raise ValueError(f"code length mismatch: queries have {query.nbits} bits, database {database.nbits}")
    if query.labels is None or database.labels is None:
        raise ValueError("codes without labels cannot be scored")
    return retrieval_report(query.bits, database.bits, query.labels, database.labels, topk=topk, radius=radius)


def evaluate_run(run: Run, dataset: Any | None = None, topk: int | None = None, radius: int = 2,
                 write: bool = True, progress: bool = False, encoder: Encoder | None = None) -> RetrievalReport:
    """Score ``run``'s best model on its own split (``dataset``: default, the run's own data).

    With ``write`` the codes, metrics.json and the PR / precision@k figures go into the run.
    """
    dataset = dataset if dataset is not None else run.load_dataset()
    encoder = encoder or Encoder.from_run(run)
    query, database = encoder.encode_split(dataset, run.split, progress=progress)
    report = score_codes(query, database, topk=topk, radius=radius)
    if write:
        with lock_folder(run.path, "run directory"):
            run.write_evaluation(query, database, report)
    return report


def format_report(report: RetrievalReport) -> str:
    lines = [f"MAP (whole database)        {report.map:.4f}"]
    if report.map_at_k is not None:
        lines.append(f"MAP@{report.topk:<23d} {report.map_at_k:.4f}")
    lines += [f"precision within radius {report.radius}  {report.precision_radius:.4f} "
              f"(empty ball for {report.empty_ball_fraction:.1%} of queries)",
              f"queries with no relevant item: {report.n_no_relevant} of {report.n_queries}"]
    lines += [f"precision@{k:<17d} {p:.4f}" for k, p in zip(report.precision_at, report.precision_at_k)]
    return "\n".join(lines)
