"""Producing one (method, nbits) entry: fit or train, encode the split, score, and describe it.

Every entry is scored by :func:`dnnh.evaluation.score_codes` on the codes of the bench's one
split, and its codes are kept beside the numbers (``codes/``), so any number can be re-derived
(``dnnh eval --query-codes ... --db-codes ...``) without retraining. An entry also carries a
``signature``: what decided its numbers (the training config's decisive fields, or the
estimator and its parameters). A rerun that would produce an entry with another signature is
refused, so one results table never mixes settings; settings a method never reads (the margin,
for the classifier) are not part of its signature, so changing them voids nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dnnh.bench.methods import Method, resolve_method
from dnnh.bench.report import utc_now
from dnnh.codes import CodeSet
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.evaluation import score_codes
from dnnh.metrics import RetrievalReport
from dnnh.runs import CONFIG, Run
from dnnh.training.config import TrainConfig
from dnnh.training.train import train

ENTRY_FORMAT = "dnnh-bench-entry/1"


@dataclass
class BenchContext:
    """What every entry of one bench shares."""

    dataset: Any
    source: DataSource | None
    split: Split
    split_sha256: str
    out: Path
    common: dict[str, Any]  # training options shared by all deep methods
    seed: int = 0
    topk: int | None = None
    radius: int = 2
    progress: bool = True
    log: Callable[[str], None] | None = None  # where deep runs' epoch lines go without progress bars
    _pixels: dict[str, np.ndarray] = field(default_factory=dict)
    _features: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def entry_name(self, method: Method, nbits: int) -> str:
        return f"{method.name}_{nbits}"

    def run_dir(self, method: Method, nbits: int) -> Path:
        return self.out / "runs" / self.entry_name(method, nbits)

    def pixels(self) -> dict[str, np.ndarray]:
        """Raw-pixel features of train / query / database items, computed once per bench."""
        if not self._pixels:
            from dnnh.baselines import pixel_features

            for part in ("train", "query", "database"):
                idx = getattr(self.split, part)
                images = getattr(self.dataset, "images", None)
                if images is None:  # file-backed sets: decode in chunks
                    chunks = [self.dataset.load_images(idx[i:i + 2048]) for i in range(0, len(idx), 2048)]
                    self._pixels[part] = np.concatenate([pixel_features(c) for c in chunks])
                else:
                    self._pixels[part] = pixel_features(images[idx])
        return self._pixels


def normalise(value: Any) -> Any:
    """JSON round trip, so a signature compares equal to the one read back from disk."""
    return json.loads(json.dumps(value, default=str))


def signature(method: Method, nbits: int, ctx: BenchContext) -> dict:
    """What decides the entry's numbers: for deep methods :meth:`TrainConfig.decisive`."""
    if method.kind == "deep":
        return normalise({"kind": "deep", "config": method.train_config(nbits, ctx.common).decisive()})
    from dnnh.baselines import make_shallow

    params = make_shallow(method.shallow, nbits, random_state=ctx.seed).get_params()
    sig = {"kind": method.kind, "estimator": method.shallow, "params": params}
    if method.kind == "features":
        sig["features_from"] = signature(resolve_method("dnnh"), nbits, ctx)
    return normalise(sig)


def comparable(sig: dict) -> dict:
    """``sig`` with every training config reduced to its decisive fields.

    Entries written before signatures were reduced carry the whole config; this puts old and new
    on one footing, so they compare equal exactly when they would train the same model.
    """
    sig = dict(sig)
    if sig.get("kind") == "deep":
        sig["config"] = normalise(TrainConfig.from_dict(sig["config"]).decisive())
    if "features_from" in sig:
        sig["features_from"] = comparable(sig["features_from"])
    return sig


def _finish(method: Method, nbits: int, ctx: BenchContext, query: CodeSet, database: CodeSet,
            train_seconds: float, extra: dict) -> dict:
    """Score the codes, save them, and assemble the entry record."""
    report: RetrievalReport = score_codes(query, database, topk=ctx.topk, radius=ctx.radius)
    name = ctx.entry_name(method, nbits)
    paths = {"query": f"codes/{name}_query.npz", "database": f"codes/{name}_database.npz"}
    query.save(ctx.out / paths["query"])
    database.save(ctx.out / paths["database"])
    return {"format": ENTRY_FORMAT, "method": method.name, "bits": int(nbits), "kind": method.kind,
            "description": method.description, "signature": signature(method, nbits, ctx),
            "split_sha256": ctx.split_sha256, "train_seconds": float(train_seconds), "codes": paths,
            "finished": utc_now(), **extra, "report": report.to_dict()}


def _fit_shallow(method: Method, nbits: int, ctx: BenchContext, features: dict[str, np.ndarray]) -> dict:
    """Fit on the training items (the deep methods' training images), encode queries and database.

    BLAS is pinned to one thread: on a busy small machine its spinning threads made small matrix
    products up to 100x slower, which would be timed as the method's cost.
    """
    from threadpoolctl import threadpool_limits

    from dnnh.baselines import make_shallow

    labels, split = ctx.dataset.labels, ctx.split
    model = make_shallow(method.shallow, nbits, random_state=ctx.seed)
    with threadpool_limits(limits=1):
        t0 = time.perf_counter()
        if model.supervised:
            model.fit(features["train"], labels[split.train])
        else:
            model.fit(features["train"])
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        q_bits, db_bits = model.transform(features["query"]), model.transform(features["database"])
        encode_seconds = time.perf_counter() - t1
    query = CodeSet.from_bits(q_bits, split.query, labels[split.query])
    database = CodeSet.from_bits(db_bits, split.database, labels[split.database])
    extra = {"estimator": repr(model), "encode_seconds": encode_seconds,
             "features": "pixels" if method.kind == "shallow" else f"penultimate features of runs/dnnh_{nbits}"}
    return _finish(method, nbits, ctx, query, database, seconds, extra)


def run_shallow(method: Method, nbits: int, ctx: BenchContext) -> dict:
    return _fit_shallow(method, nbits, ctx, ctx.pixels())


def run_features(method: Method, nbits: int, ctx: BenchContext) -> dict:
    """A shallow method on the penultimate (50q) features of this bench's dnnh model at ``nbits``."""
    if nbits not in ctx._features:
        ctx._features.clear()  # one code length at a time: 70,000 x 2,400 floats is 670 MB
        encoder = Encoder.from_run(ctx.run_dir(resolve_method("dnnh"), nbits))
        ctx._features[nbits] = {part: encoder.features(ctx.dataset, getattr(ctx.split, part))
                                for part in ("train", "query", "database")}
    return _fit_shallow(method, nbits, ctx, ctx._features[nbits])


def _resumable_config(method: Method, nbits: int, ctx: BenchContext, run: Run) -> TrainConfig:
    """The config to continue ``run`` with: the saved one, if it trains what this method's would.

    Runtime fields and fields neither config reads may differ (see :meth:`TrainConfig.decisive`);
    train() needs the saved config verbatim, so it is returned as saved.
    """
    wanted = method.train_config(nbits, ctx.common)
    a, b = run.config.decisive(), wanted.decisive()
    if a != b:
        diff = {k: (a.get(k, "<not read>"), b.get(k, "<not read>")) for k in sorted(set(a) | set(b))
                if a.get(k, "<not read>") != b.get(k, "<not read>")}
        raise ValueError(f"{run.path} holds an unfinished {method.name} run with other settings "
                         f"(field: (saved, requested)) {diff}; rerun with the saved settings, "
                         f"or delete {run.path} to start it over")
    return run.config


def run_deep(method: Method, nbits: int, ctx: BenchContext) -> dict:
    """Train (or continue) the method's run under ``OUT/runs/<method>_<nbits>``, then score it.

    A run dir with a checkpoint is continued with ``train(..., resume=True)``. train_seconds is
    the wall time of training (set-up, epochs, per-epoch validation) summed over the
    invocations that produced it: the run's ``bench_time.json`` keeps the time up to the last
    checkpoint, so time lost to an interruption after it is not counted.
    """
    run_dir = ctx.run_dir(method, nbits)
    saved = Run.open(run_dir) if (run_dir / CONFIG).exists() else None
    resume = saved is not None and saved.has_checkpoint
    if resume:
        config, before = _resumable_config(method, nbits, ctx, saved), saved.read_timing()
    else:
        config, before = method.train_config(nbits, ctx.common), 0.0
    t0 = time.perf_counter()

    def checkpoint_clock(epoch: int, record: dict) -> None:
        Run.open(run_dir).write_timing(before + time.perf_counter() - t0, epoch)

    result = train(config, ctx.dataset, ctx.split, run_dir, resume=resume, progress=ctx.progress,
                   on_epoch_end=checkpoint_clock, source=ctx.source, log=None if ctx.progress else ctx.log)
    seconds = before + time.perf_counter() - t0
    result.run.write_timing(seconds, len(result.history))
    query, database = Encoder.from_run(result.run).encode_split(ctx.dataset, ctx.split)
    history = [dict(r) for r in result.history]
    epoch_seconds = sum(float(r["seconds"]) for r in history)
    extra = {
        "run_dir": f"runs/{ctx.entry_name(method, nbits)}", "config": config.to_dict(), "resumed": resume,
        "best_epoch": int(result.best_epoch), "best_val_map": _finite_or_none(result.best_val_map),
        "epochs_run": len(history), "epoch_seconds": epoch_seconds,
        "images_per_s": _mean([r["images_per_s"] for r in history]),
        "triplets_per_s": _mean([r["triplets_per_s"] for r in history]),
        "history": history,
    }
    return _finish(method, nbits, ctx, query, database, seconds, extra)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


RUNNERS: dict[str, Callable[[Method, int, BenchContext], dict]] = {
    "shallow": run_shallow, "deep": run_deep, "features": run_features,
}
