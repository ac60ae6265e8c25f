"""Scoring: codes against codes, and a trained run on its own split.

Shared by ``dnnh eval``, ``dnnh train`` (which scores the run when it ends), the demo and the
bench, so every number in a table comes from the same encoding and metric code. The metric
conventions (ties by database index, AP@K over the relevant items retrieved, an empty radius
ball scoring 0, the radius inclusive) are those of :mod:`dnnh.metrics` (docs/METHOD.md §9).

Under protocol ``unseen`` (:func:`dnnh.data.splits.unseen_split`) a run's figure ranks the queries
against the database items of the held-out classes (unseen@unseen); the same queries against the
whole database (unseen@all) are the second figure, ``metrics_all_classes.json`` in the run.

The codes a run was scored with stay in it with their origin (:mod:`dnnh.codes.origin`);
:func:`reusable_codes` hands them back when the weights, data, preprocessing and engine are the
ones they came from, so ``dnnh eval`` and ``dnnh encode`` after ``dnnh train`` encode nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dnnh.codes import CodeSet
from dnnh.codes.origin import codes_origin, same_origin
from dnnh.codes.provenance import file_digest
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.locks import lock_folder
from dnnh.metrics import RetrievalReport, retrieval_report
from dnnh.runs import BEST_WEIGHTS, CODES, Run, read_json, write_json

#: The unseen@all figure of a run split under protocol unseen (beside metrics.json).
METRICS_ALL_CLASSES = "metrics_all_classes.json"


def score_codes(query: CodeSet, database: CodeSet, topk: int | None = None, radius: int = 2) -> RetrievalReport:
    """The retrieval report of labelled query codes against labelled database codes."""
    if query.nbits != database.nbits:
        raise ValueError(f"code length mismatch: queries have {query.nbits} bits, database {database.nbits}")
    if query.labels is None or database.labels is None:
        raise ValueError("codes without labels cannot be scored")
    return retrieval_report(query.bits, database.bits, query.labels, database.labels, topk=topk, radius=radius)


def held_out_codes(database: CodeSet, split: Split) -> CodeSet:
    """The database codes of the split's held-out classes (all of them when the split holds none out)."""
    if split.held_out is None:
        return database
    keep = np.isin(database.labels, split.held_out)
    return CodeSet(codes=database.codes[keep], nbits=database.nbits, ids=database.ids[keep],
                   labels=database.labels[keep])


def score_split(query: CodeSet, database: CodeSet, split: Split, topk: int | None = None,
                radius: int = 2) -> tuple[RetrievalReport, RetrievalReport | None]:
    """The split's figure and, under protocol unseen, the second one against the whole database.

    Without held-out classes: (the report against the database, None). With them: (against the
    held-out classes' database items, against the whole database).
    """
    if split.held_out is None:
        return score_codes(query, database, topk=topk, radius=radius), None
    return (score_codes(query, held_out_codes(database, split), topk=topk, radius=radius),
            score_codes(query, database, topk=topk, radius=radius))


def run_codes_origin(run: Run, dataset: Any, engine: str) -> dict[str, str]:
    """The origin record of codes ``engine`` computes now from ``run``'s weights and ``dataset``."""
    return codes_origin(file_digest(run.path / BEST_WEIGHTS), dataset.fingerprint(), run.prep.to_dict(), engine)


def reusable_codes(run: Run, dataset: Any, engine: str = "torch") -> tuple[CodeSet, CodeSet] | None:
    """The run's stored (query, database) codes when they are what ``engine`` would compute now, else None.

    None when a file is missing or unreadable, carries no origin (written before it existed),
    or its origin differs (the weights file, the data's fingerprint, the preprocessing or the
    engine), or its ids are not the split's: encoding again is then the only right answer.
    """
    paths = [run.path / CODES[role] for role in ("query", "database")]
    if not all(p.is_file() for p in paths) or not (run.path / BEST_WEIGHTS).is_file():
        return None
    try:
        query, database = (CodeSet.load(p) for p in paths)
    except (ValueError, TypeError, OSError):
        return None  # damaged: encoding again rewrites them
    now = run_codes_origin(run, dataset, engine)
    for codes, ids in ((query, run.split.query), (database, run.split.database)):
        if (not same_origin(codes.origin, now, engine) or codes.labels is None or codes.nbits != run.model_config.nbits
                or not np.array_equal(codes.ids, ids)):
            return None
    return query, database


def evaluate_run(run: Run, dataset: Any | None = None, topk: int | None = None, radius: int = 2,
                 write: bool = True, progress: bool = False, encoder: Encoder | None = None,
                 codes: tuple[CodeSet, CodeSet] | None = None) -> RetrievalReport:
    """Score ``run``'s best model on its own split (``dataset``: default, the run's own data).

    ``codes``: the (query, database) codes to score, from :func:`reusable_codes`; without them
    ``encoder`` (default: the run's torch fp32 encoder) encodes the split now, and the codes
    carry their origin. With ``write`` the codes, metrics.json and the PR / precision@k figures
    go into the run (and, under protocol unseen, the unseen@all figure into
    :data:`METRICS_ALL_CLASSES`). The report returned is the split's figure (:func:`score_split`).
    """
    dataset = dataset if dataset is not None else run.load_dataset()
    if codes is not None:
        query, database = codes
    else:
        encoder = encoder or Encoder.from_run(run)
        query, database = encoder.encode_split(dataset, run.split, progress=progress)
        query.origin = database.origin = run_codes_origin(run, dataset, encoder.backend.name)
    report, all_classes = score_split(query, database, run.split, topk=topk, radius=radius)
    if write:
        with lock_folder(run.path, "run directory"):
            run.write_evaluation(query, database, report)
            if all_classes is not None:
                write_json(run.path / METRICS_ALL_CLASSES, all_classes.to_dict())
    return report


def unseen_summary(run: Run) -> str | None:
    """One line on the unseen@all figure of a run split under protocol unseen (None otherwise)."""
    path = run.path / METRICS_ALL_CLASSES
    if run.split.held_out is None or not path.exists():
        return None
    every = read_json(path)
    return (f"the figures above rank the queries (held-out classes {', '.join(map(str, run.split.held_out))}) "
            f"against those classes' database items; against the whole database (unseen@all): MAP "
            f"{every['map']:.4f}, precision within radius {every['radius']} {every['precision_radius']:.4f} "
            f"({METRICS_ALL_CLASSES})")


def format_report(report: RetrievalReport) -> str:
    lines = [f"MAP (whole database)        {report.map:.4f}"]
    if report.map_at_k is not None:
        lines.append(f"MAP@{report.topk:<23d} {report.map_at_k:.4f}")
    lines += [f"precision within radius {report.radius}  {report.precision_radius:.4f} "
              f"(empty ball for {report.empty_ball_fraction:.1%} of queries)",
              f"queries with no relevant item: {report.n_no_relevant} of {report.n_queries}"]
    lines += [f"precision@{k:<17d} {p:.4f}" for k, p in zip(report.precision_at, report.precision_at_k)]
    return "\n".join(lines)
