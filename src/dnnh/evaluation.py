"""Scoring: codes against codes, and a trained run on its own split.

Shared by ``dnnh eval``, ``dnnh train`` (which scores the run when it ends), the demo and the
bench, so every number in a table comes from the same encoding and metric code. The metric
conventions (ties by database index, AP@K over the relevant items retrieved, an empty radius
ball scoring 0, the radius inclusive) are those of :mod:`dnnh.metrics` (docs/METHOD.md §9).

Under protocol ``unseen`` (:func:`dnnh.data.splits.unseen_split`) a run's figure ranks the queries
against the database items of the held-out classes (unseen@unseen); the same queries against the
whole database (unseen@all) are the second figure, ``metrics_all_classes.json`` in the run.

The codes a run was scored with stay in it with their origin (:mod:`dnnh.codes.origin`): the
weights the encoder loaded (never the file hashed after encoding, which a ``train`` may have
replaced meanwhile) and a digest of the codes' own arrays. :func:`reusable_codes` hands them back
when the weights, data, preprocessing and engine are the ones they came from and the arrays are
untouched, so ``dnnh eval`` and ``dnnh encode`` after ``dnnh train`` encode nothing.
"""

from __future__ import annotations

from typing import Any, Callable

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


def encoder_origin(encoder: Encoder, run: Run, dataset: Any) -> dict[str, str] | None:
    """The origin record of the codes ``encoder`` computes from ``run``'s preprocessing and ``dataset``:
    the weights it loaded (None, and so no record, for an encoder not loaded from a run's file)."""
    weights = getattr(encoder, "weights_digest", None)
    if weights is None:
        return None
    return codes_origin(weights, dataset.fingerprint(), run.prep.to_dict(), encoder.backend.name)


def reusable_codes(run: Run, dataset: Any, engine: str = "torch",
                   say: Callable[[str], None] | None = None) -> tuple[CodeSet, CodeSet] | None:
    """The run's stored (query, database) codes when they are what ``engine`` would compute now, else None.

    None when a file is missing or unreadable, carries no origin (written before it existed),
    its arrays are not the ones its origin describes (edited after dnnh wrote them), its origin
    differs (the weights file as it is now, the data's fingerprint, the preprocessing or the
    engine), or its ids are not the split's: encoding again is then the only right answer.
    ``say`` gets one line when a file is there but damaged or edited (not when it is merely of
    other weights, data or engine: a new train makes those).
    """
    paths = [run.path / CODES[role] for role in ("query", "database")]
    if not all(p.is_file() for p in paths) or not (run.path / BEST_WEIGHTS).is_file():
        return None
    try:
        query, database = (CodeSet.load(p) for p in paths)
    except (ValueError, TypeError, OSError) as exc:  # damaged or edited: encoding again rewrites them
        if say is not None:
            say(f"{' '.join(str(exc).split())}; encoding the split again")
        return None
    now = codes_origin(file_digest(run.path / BEST_WEIGHTS), dataset.fingerprint(), run.prep.to_dict(), engine)
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
        if encoder is None:  # on the device the run trained on when it is here (a GPU run: there, not the CPU)
            from dnnh.devices import recorded_device

            encoder = Encoder.from_run(run, device=recorded_device(run.config.device))
        query, database = encoder.encode_split(dataset, run.split, progress=progress)
        origin = encoder_origin(encoder, run, dataset)
        query.stamp_origin(origin)
        database.stamp_origin(origin)
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
