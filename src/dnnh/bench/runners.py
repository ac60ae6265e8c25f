"""Producing one (method, nbits) entry: fit or train, encode the split, score, and describe it.

Every entry is scored by :func:`dnnh.evaluation.score_codes` on the codes of the bench's one
split, and its codes are kept beside the numbers (``codes/``), so any number can be re-derived
(``dnnh eval --query-codes ... --db-codes ...``) without retraining. An entry also carries a
``signature``: what decided its numbers (the training config's decisive fields, or the
estimator and its parameters). A rerun that would produce an entry with another signature is
refused, so one results table never mixes settings; settings a method never reads (the margin,
for the classifier) are not part of its signature, so changing them voids nothing. A deep entry
is one training seed: the bench's own seed keeps the plain name (``dnnh_48``), other seeds add
``_s<seed>`` (``dnnh_48_s1``), so a single-seed folder grows into a multi-seed one unchanged.

A bench whose backbone is frozen with a weights file (``--backbone B --backbone-weights FILE
--freeze-backbone``) computes the backbone's features once (:func:`BenchContext.frozen_features`,
:mod:`dnnh.training.feature_cache`): every deep method then trains its head on them and is
encoded from them (the bits ``dnnh encode`` gives on the raw images), and the shallow methods
and ``<shallow>@features`` read the same features instead of raw pixels (their signature names
the features, so a folder never mixes the two).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dnnh.baselines.catalog import SHALLOW_CATALOG
from dnnh.bench.methods import Method, resolve_method
from dnnh.bench.report import utc_now
from dnnh.devices import recorded_device
from dnnh.codes import CodeSet
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.evaluation import score_split
from dnnh.metrics import RetrievalReport
from dnnh.runs import CONFIG, Run
from dnnh.config import TrainConfig, config_differences, predates_reform
from dnnh.training.finetune import make_preprocessing
from dnnh.training.head_training import config_features, split_codes, uses_feature_cache
from dnnh.training.train import train

ENTRY_FORMAT = "dnnh-bench-entry/1"
#: Written into a run folder that ``--adopt`` brought in: where it came from (:mod:`dnnh.bench.adopt`).
ADOPTED = "adopted.json"


@dataclass
class BenchContext:
    """What every entry of one bench shares."""

    dataset: Any
    source: DataSource | None
    split: Split
    split_sha256: str
    out: Path
    common: dict[str, Any]  # training options shared by all deep methods (with the default training seed)
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # training seeds of deep entries; [] means the default
    methods: dict[str, Method] = field(default_factory=dict)  # this bench's methods (tuned), by name
    topk: int | None = None
    radius: int = 2
    progress: bool = True
    log: Callable[[str], None] | None = None  # where deep runs' epoch lines go without progress bars
    _pixels: dict[str, np.ndarray] = field(default_factory=dict)
    _features: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    _frozen: dict[str, Any] = field(default_factory=dict)  # the frozen backbone's config, table and rows, once
    floors: list[dict] = field(default_factory=list)  # the floor records (dnnh.bench.floors), with --floors

    @property
    def default_seed(self) -> int:
        """The training seed of a bench without ``seeds`` (the split's unless set): plain entry names."""
        return int(self.common.get("seed", self.seed))

    def entry_name(self, method: Method, nbits: int, seed: int | None = None) -> str:
        suffix = "" if seed is None or int(seed) == self.default_seed else f"_s{int(seed)}"
        return f"{method.name}_{nbits}{suffix}"

    def run_dir(self, method: Method, nbits: int, seed: int | None = None) -> Path:
        return self.out / "runs" / self.entry_name(method, nbits, seed)

    def common_for(self, seed: int | None) -> dict[str, Any]:
        """The shared training options with the training seed of one entry."""
        return self.common if seed is None else {**self.common, "seed": int(seed)}

    def method(self, name: str) -> Method:
        """This bench's method called ``name`` (tuned where the folder was tuned)."""
        return self.methods.get(name) or resolve_method(name)

    @property
    def features_seed(self) -> int:
        """The seed of the dnnh run whose features the ``<shallow>@features`` methods read."""
        return self.seeds[0] if self.seeds else self.default_seed

    def frozen_config(self) -> TrainConfig | None:
        """The shared training config when the bench's backbone is frozen with a weights file (its heads train
        on cached features, which the shallow methods and floors read too); None otherwise."""
        if "config" not in self._frozen:
            config = TrainConfig.from_recipe("modern", **{**self.common, "nbits": 8})  # nbits: any, decides nothing
            self._frozen["config"] = config if uses_feature_cache(config) else None
        return self._frozen["config"]

    def features_identity(self) -> dict | None:
        """What the frozen features are (backbone, weights file's sha256, preprocessing), for signatures."""
        config = self.frozen_config()
        if config is None:
            return None
        prep = make_preprocessing(config, self.dataset, self.split.train)
        return {"backbone": config.backbone, "weights_sha256": config.backbone_weights["sha256"],
                "preprocessing": prep.to_dict()}

    def frozen_features(self) -> Any:
        """The cached features of every item of the split (a :class:`~dnnh.training.feature_cache.FeatureTable`),
        computed once for the whole bench; None when the backbone is not frozen with a file."""
        config = self.frozen_config()
        if config is None:
            return None
        if "table" not in self._frozen:
            self._frozen["table"] = config_features(config, self.dataset, self.split, progress=self.progress,
                                                    log=self.log)
        return self._frozen["table"]

    def shallow_inputs(self) -> dict[str, np.ndarray]:
        """What the shallow methods fit and encode: the frozen features when there are, else raw pixels."""
        table = self.frozen_features()
        if table is None:
            return self.pixels()
        if "rows" not in self._frozen:
            self._frozen["rows"] = {part: table.rows(getattr(self.split, part))
                                    for part in ("train", "query", "database")}
        return self._frozen["rows"]

    def inputs_label(self) -> str:
        """How results say what the shallow methods read."""
        config = self.frozen_config()
        if config is None:
            return "raw pixels"
        size = make_preprocessing(config, self.dataset, self.split.train).input_size
        return f"frozen {config.backbone} features ({config.backbone_weights['name']}, {size} px)"

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


def signature(method: Method, nbits: int, ctx: BenchContext, seed: int | None = None) -> dict:
    """What decides the entry's numbers: for deep methods :meth:`TrainConfig.decisive`."""
    if method.kind == "deep":
        return normalise({"kind": "deep", "config": method.train_config(nbits, ctx.common_for(seed)).decisive()})
    from dnnh.baselines import make_shallow

    params = make_shallow(method.shallow, nbits, random_state=ctx.seed).get_params()
    sig = {"kind": method.kind, "estimator": method.shallow, "params": params}
    if method.kind == "shallow" and ctx.frozen_config() is not None:  # pixel entries keep their old signature
        sig["inputs"] = ctx.features_identity()
    if method.kind == "features":
        sig["features_from"] = signature(ctx.method("dnnh"), nbits, ctx, ctx.features_seed)
    return normalise(sig)


def comparable(sig: dict) -> dict:
    """``sig`` with every training config reduced to its decisive fields.

    Entries written before signatures were reduced carry the whole config; this puts old and new
    on one footing, so they compare equal exactly when they would train the same model. An entry
    of a loss reformed since (:data:`REFORMED`) gets its new field marked as "before", so it
    differs from every new entry and is refused, not read back as if it were one.
    """
    sig = dict(sig)
    if sig.get("kind") == "deep":
        saved = sig["config"]
        sig["config"] = normalise(TrainConfig.from_dict(saved).decisive())
        stale = predates_reform(saved)
        if stale is not None:
            sig["config"][stale[0]] = stale[1]
    if "features_from" in sig:
        sig["features_from"] = comparable(sig["features_from"])
    return sig


def load_finished(path: Path, wanted: dict, ctx: BenchContext, fmt: str = ENTRY_FORMAT) -> dict | None:
    """The finished record at ``path`` (None when there is none), after checking its split and signature."""
    if not path.exists():
        return None
    entry = json.loads(path.read_text())
    if entry.get("format") != fmt:
        raise ValueError(f"{path} is not a bench entry (format {entry.get('format')!r}); move it away")
    if entry["split_sha256"] != ctx.split_sha256:
        raise ValueError(f"{path} was scored on another split than {ctx.out / 'split.json'}; delete it to redo it")
    # Only the saved side may predate reduced signatures; signature() gives the reduced form.
    saved = comparable(entry["signature"])
    if saved != wanted:
        differences = config_differences(saved, wanted, asked="requested")
        raise ValueError(f"{path} was made with other settings than this run asks for ({differences}); "
                         f"use the saved settings, another output folder, or delete {path.name} "
                         f"(and runs/{path.stem}) to redo it")
    return entry


def _finish(method: Method, nbits: int, ctx: BenchContext, query: CodeSet, database: CodeSet,
            train_seconds: float, extra: dict, seed: int | None = None) -> dict:
    """Score the codes, save them, and assemble the entry record.

    Under protocol unseen, ``report`` ranks the queries against the held-out classes' database
    items and ``report_all_classes`` against the whole database (:func:`dnnh.evaluation.score_split`).
    """
    report: RetrievalReport
    report, all_classes = score_split(query, database, ctx.split, topk=ctx.topk, radius=ctx.radius)
    if all_classes is not None:
        extra = {**extra, "report_all_classes": all_classes.to_dict()}
    name = ctx.entry_name(method, nbits, seed)
    paths = {"query": f"codes/{name}_query.npz", "database": f"codes/{name}_database.npz"}
    query.save(ctx.out / paths["query"])
    database.save(ctx.out / paths["database"])
    return {"format": ENTRY_FORMAT, "method": method.name, "bits": int(nbits), "kind": method.kind,
            "description": method.description, "signature": signature(method, nbits, ctx, seed),
            "split_sha256": ctx.split_sha256, "train_seconds": float(train_seconds), "codes": paths,
            "finished": utc_now(), **extra, "report": report.to_dict()}


def _fit_shallow(method: Method, nbits: int, ctx: BenchContext, features: dict[str, np.ndarray], inputs: str) -> dict:
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
    extra = {"estimator": repr(model), "encode_seconds": encode_seconds, "features": inputs}
    if ctx.frozen_config() is not None:
        extra["description"] = f"{SHALLOW_CATALOG[method.shallow][1]} on the {ctx.inputs_label()}"
    return _finish(method, nbits, ctx, query, database, seconds, extra)


def run_shallow(method: Method, nbits: int, ctx: BenchContext, seed: int | None = None) -> dict:
    """A shallow method on raw pixels, or on the frozen backbone's cached features when the bench has one."""
    return _fit_shallow(method, nbits, ctx, ctx.shallow_inputs(),
                        "pixels" if ctx.frozen_config() is None else ctx.inputs_label())


def run_features(method: Method, nbits: int, ctx: BenchContext, seed: int | None = None) -> dict:
    """A shallow method on the penultimate features of this bench's dnnh model at ``nbits``: its 50q features,
    or with a frozen backbone the backbone's own (the cached features, the same numbers)."""
    if ctx.frozen_config() is not None:
        return _fit_shallow(method, nbits, ctx, ctx.shallow_inputs(), ctx.inputs_label())
    if nbits not in ctx._features:
        ctx._features.clear()  # one code length at a time: 70,000 x 2,400 floats is 670 MB
        features_run = Run.open(ctx.run_dir(ctx.method("dnnh"), nbits, ctx.features_seed))
        encoder = Encoder.from_run(features_run, device=recorded_device(features_run.config.device))
        ctx._features[nbits] = {part: encoder.features(ctx.dataset, getattr(ctx.split, part))
                                for part in ("train", "query", "database")}
    return _fit_shallow(method, nbits, ctx, ctx._features[nbits], f"penultimate features of runs/dnnh_{nbits}")


def _resumable_config(method: Method, nbits: int, common: dict[str, Any], run: Run) -> TrainConfig:
    """The config to continue ``run`` with: the saved one, if it trains what this method's would.

    Runtime fields and fields neither config reads may differ (see :meth:`TrainConfig.decisive`);
    train() needs the saved config verbatim, so it is returned as saved.
    """
    if run.reformed is not None:
        raise ValueError(f"{run.path} holds a {run.config.loss} run trained {run.reformed[1]}; "
                         f"delete {run.path} to train it again under today's formula")
    wanted = method.train_config(nbits, common)
    a, b = run.config.decisive(), wanted.decisive()
    if a != b:
        diff = {k: (a.get(k, "<not read>"), b.get(k, "<not read>")) for k in sorted(set(a) | set(b))
                if a.get(k, "<not read>") != b.get(k, "<not read>")}
        raise ValueError(f"{run.path} holds an unfinished {method.name} run with other settings "
                         f"(field: (saved, requested)) {diff}; rerun with the saved settings, "
                         f"or delete {run.path} to start it over")
    return run.config


@dataclass
class Trained:
    """A deep run trained (or continued, or read back finished) by :func:`train_run`."""

    result: Any  # dnnh.training.train.TrainResult
    config: TrainConfig
    seconds: float
    resumed: bool
    adopted_from: str | None


def train_run(method: Method, nbits: int, ctx: BenchContext, run_dir: Path, common: dict[str, Any]) -> Trained:
    """Train ``method`` at ``nbits`` into ``run_dir``, or continue the run a checkpoint there holds.

    A run dir with a checkpoint is continued with ``train(..., resume=True)`` (a finished one
    trains no further). The time is the wall time of training (set-up, epochs, per-epoch
    validation) summed over the invocations that produced it: the run's ``bench_time.json``
    keeps the time up to the last checkpoint, so time lost to an interruption after it is not
    counted (an adopted run starts from its epochs' seconds, :mod:`dnnh.bench.adopt`).
    """
    saved = Run.open(run_dir) if (run_dir / CONFIG).exists() else None
    resume = saved is not None and saved.has_checkpoint
    if resume:
        config, before = _resumable_config(method, nbits, common, saved), saved.read_timing()
    else:
        config, before = method.train_config(nbits, common), 0.0
    t0 = time.perf_counter()

    opened = functools.cache(lambda: Run.open(run_dir))  # the run train() made, read once at its first epoch

    def checkpoint_clock(epoch: int, record: dict) -> None:
        opened().write_timing(before + time.perf_counter() - t0, epoch)

    result = train(config, ctx.dataset, ctx.split, run_dir, resume=resume, progress=ctx.progress,
                   on_epoch_end=checkpoint_clock, source=ctx.source, log=None if ctx.progress else ctx.log)
    seconds = before + time.perf_counter() - t0
    result.run.write_timing(seconds, len(result.history))
    adopted = run_dir / ADOPTED
    adopted_from = json.loads(adopted.read_text())["from"] if adopted.exists() else None
    return Trained(result, config, seconds, resume, adopted_from)


def training_record(trained: Trained) -> dict:
    """The fields of a deep record that describe its training (bench entries and tuning points)."""
    result = trained.result
    history = [dict(r) for r in result.history]
    record = {
        "config": trained.config.to_dict(), "seed": trained.config.seed, "resumed": trained.resumed,
        "best_epoch": int(result.best_epoch), "best_val_map": _finite_or_none(result.best_val_map),
        "epochs_run": len(history), "epoch_seconds": sum(float(r["seconds"]) for r in history),
        "images_per_s": _mean([r["images_per_s"] for r in history]),
        "triplets_per_s": _mean([r["triplets_per_s"] for r in history]),
        "history": history,
    }
    if trained.adopted_from is not None:
        record["adopted_from"] = trained.adopted_from
    return record


def run_deep(method: Method, nbits: int, ctx: BenchContext, seed: int | None = None) -> dict:
    """Train (or continue) the method's run under ``OUT/runs/<entry>``, then score it on the split."""
    run_dir = ctx.run_dir(method, nbits, seed)
    trained = train_run(method, nbits, ctx, run_dir, ctx.common_for(seed))
    extra = {"run_dir": f"runs/{ctx.entry_name(method, nbits, seed)}", **training_record(trained)}
    t0 = time.perf_counter()
    if uses_feature_cache(trained.config):  # the head on the cached features: dnnh encode's bits, without the backbone
        query, database = split_codes(trained.result.model, ctx.frozen_features(), ctx.dataset, ctx.split,
                                      device=next(trained.result.model.parameters()).device)
        extra["codes_from"] = "cached features"
    else:
        place = recorded_device(trained.config.device)  # where it trained: a GPU encodes the split in seconds
        query, database = Encoder.from_run(trained.result.run, device=place).encode_split(ctx.dataset, ctx.split)
    extra["encode_seconds"] = time.perf_counter() - t0
    return _finish(method, nbits, ctx, query, database, trained.seconds, extra, seed)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


RUNNERS: dict[str, Callable[[Method, int, BenchContext, int | None], dict]] = {
    "shallow": run_shallow, "deep": run_deep, "features": run_features,
}
