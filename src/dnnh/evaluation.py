"""Scoring a trained run on its split: encode queries and database, then the retrieval report.

Shared by ``dnnh eval``, ``dnnh train`` (which scores the run when it ends), the demo and the
bench, so every number in a table comes from the same encoding and metric code.
"""

from __future__ import annotations

import json


from dnnh.codes import CodeSet
from dnnh.data.pipeline import BatchSource
from dnnh.metrics import RetrievalReport, retrieval_report
from dnnh.training.encode import TrainedRun, encode_indices

PRECISION_AT = (1, 10, 50, 100, 500, 1000)


def encode_split(run: TrainedRun, dataset, num_workers: int = 2, progress: bool = False) -> tuple[CodeSet, CodeSet]:
    """Codes of the split's queries (query role) and database, with dataset ids and labels."""
    run.split.check_fits(len(dataset))
    source = BatchSource(dataset, run.prep, num_workers=num_workers)
    out = []
    for part, role in (("query", "query"), ("database", "database")):
        idx = getattr(run.split, part)
        bits = encode_indices(run.model, source, idx, role=role, progress=progress)
        out.append(CodeSet.from_bits(bits, ids=idx, labels=dataset.labels[idx]))
    return out[0], out[1]


def score_codes(query: CodeSet, database: CodeSet, topk: int | None = None, radius: int = 2) -> RetrievalReport:
    if query.nbits != database.nbits:
        raise ValueError(f"code length mismatch: queries have {query.nbits} bits, database {database.nbits}")
    precision_at = tuple(k for k in PRECISION_AT if k <= len(database)) or (len(database),)
    return retrieval_report(query.bits, database.bits, query.labels, database.labels, topk=topk, radius=radius,
                            precision_at=precision_at)


def evaluate_run(run: TrainedRun, dataset, topk: int | None = None, radius: int = 2, write: bool = True,
                 num_workers: int = 2, progress: bool = False) -> RetrievalReport:
    """Score ``run`` on its own split; with ``write`` save metrics.json, codes and pr_curve.png in the run."""
    query, database = encode_split(run, dataset, num_workers=num_workers, progress=progress)
    report = score_codes(query, database, topk=topk, radius=radius)
    if write:
        from dnnh.atomic import atomic_write_text
        from dnnh.metrics import plot_pr_curves, plot_precision_at_k

        query.save(run.path / "codes_query.npz")
        database.save(run.path / "codes_database.npz")
        atomic_write_text(run.path / "metrics.json", json.dumps(report.to_dict(), indent=2))
        name = f"DNNH {run.config.bits} bits"
        plot_pr_curves({name: report}, run.path / "pr_curve.png", title=f"{run.dataset_name}: precision-recall")
        plot_precision_at_k({name: report}, run.path / "precision_at_k.png", title=f"{run.dataset_name}: precision@k")
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
