"""The same tuning budget for every deep method: one small grid, validation MAP only, one code length.

``run_bench(..., tune_bits=48)`` (``dnnh bench --tune``) trains each tunable method of the bench
at every point of its grid, at one code length, with the bench's shared settings (epochs,
backbone, augmentation, seed) and nothing else changed, and keeps the point with the best
validation MAP (validation images ranked against the training images: the queries and the
database are never encoded, so the choice cannot see the test numbers). Every grid has the same
shape: the learning rate at three values times the method's own main hyperparameter at two:

=========== =================== ===============================================================================
method      own hyperparameter  values
=========== =================== ===============================================================================
dnnh        margin              bits / 24, bits / 12 (the default)
dnnh-fc     margin              bits / 24, bits / 12
classifier  weight_decay        5e-4 (the default), 5e-3
csq         lam                 1e-4 (the reference's), 0.1
dpsh        eta (per element)   0.02, 0.2 (the default: the references' 0.1 in effect)
dsh         alpha               0.001, 0.01 (the paper's; DeepHash-pytorch's 0.1 is 0.1/q here: METHOD.md 11)
orthohash   ortho_margin        0.2 (the reference's), 0.4
dtsh        dtsh_alpha          5, 10 (DeepHash-pytorch's margin 5 is 2.5 here: METHOD.md 11)
hashnet     hashnet_alpha       5, 10 (the authors' sigmoid_param 10 / q, times q; DeepHash-pytorch's is 0.1 q)
greedyhash  greedy_alpha        0.1 (the reference's), 1 (the reference's for ImageNet)
dpn         dpn_margin          0.5, 1 (the reference's)
=========== =================== ===============================================================================

The margin is chosen as a multiple of the code length and carried to other lengths in
proportion (:data:`dnnh.bench.methods.SCALES_WITH_BITS`); the other settings carry unchanged.
Deep methods without a grid (the paper recipe, the ablations, CNNH) train with their defaults
and are marked untuned.

Layout under ``OUT``::

    tune/raw/<method>_<bits>_<setting><value>_<setting><value>.json   one grid point (validation only)
    tune/runs/<same name>/                                             its training run (resumable)
    tuning.json        the length, the shared settings, every method's grid, every point's
                       validation MAP and the choice (rewritten after each point)

A later ``run_bench`` in the folder trains each tuned method with its choice; a tunable method
the folder has no finished choice for is refused (tune it first), so a tuned table never mixes
tuned and untuned rows of the methods that have a grid. The table's entry at the tuning length
and seed is the chosen point's run itself, copied from ``tune/runs/`` (the same config: training
it again would give the same model), then scored on the test split like any other.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dnnh.atomic import atomic_write_text
from dnnh.bench.methods import Method
from dnnh.bench.report import utc_now
from dnnh.bench.runners import BenchContext, load_finished, normalise, signature, train_run, training_record
from dnnh.config import RUNTIME_FIELDS, config_differences

TUNING_FORMAT = "dnnh-tuning/1"
POINT_FORMAT = "dnnh-tune-point/1"
TUNING = "tuning.json"
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
#: Each tunable method's own main hyperparameter and its two values at a code length.
OWN: dict[str, tuple[str, Callable[[int], tuple[float, float]]]] = {
    "dnnh": ("margin", lambda bits: (bits / 24, bits / 12)),
    "dnnh-fc": ("margin", lambda bits: (bits / 24, bits / 12)),
    "classifier": ("weight_decay", lambda bits: (5e-4, 5e-3)),
    "csq": ("lam", lambda bits: (1e-4, 0.1)),
    "dpsh": ("eta", lambda bits: (0.02, 0.2)),
    "dsh": ("alpha", lambda bits: (1e-3, 1e-2)),
    "orthohash": ("ortho_margin", lambda bits: (0.2, 0.4)),
    "dtsh": ("dtsh_alpha", lambda bits: (5.0, 10.0)),
    "hashnet": ("hashnet_alpha", lambda bits: (5.0, 10.0)),
    "greedyhash": ("greedy_alpha", lambda bits: (0.1, 1.0)),
    "dpn": ("dpn_margin", lambda bits: (0.5, 1.0)),
}
TUNABLE = tuple(OWN)
SELECTION = ("the grid point with the best validation MAP (the best epoch of its run; validation images "
             "ranked against the training images), the first in grid order on a tie")

Grids = Mapping[str, Mapping[str, Sequence[float]]]


def default_grid(name: str, bits: int) -> dict[str, list[float]] | None:
    """The grid of the method called ``name`` at ``bits`` bits, or None when it has none."""
    if name not in OWN:
        return None
    field, values = OWN[name]
    return {"lr": list(LEARNING_RATES), field: [float(v) for v in values(int(bits))]}


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the grid's values, the first setting varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_name(method: str, bits: int, settings: Mapping[str, Any]) -> str:
    """``dnnh_48_lr0.001_margin4``: the file and run-folder name of one grid point."""
    return f"{method}_{bits}_" + "_".join(f"{k}{float(v):g}" for k, v in settings.items())


def shared_settings(common: Mapping[str, Any]) -> dict[str, Any]:
    """The bench's shared training options that decide a tuning (not runtime fields, not the seed)."""
    return normalise({k: common[k] for k in sorted(common) if k not in RUNTIME_FIELDS and k != "seed"})


def read_tuning(out: Path) -> dict | None:
    path = Path(out) / TUNING
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("format") != TUNING_FORMAT:
        raise ValueError(f"{path} is not a tuning record (format {saved.get('format')!r}); move it away")
    return saved


def _check_saved(saved: dict | None, ctx: BenchContext, bits: int | None) -> None:
    if saved is None:
        return
    path = ctx.out / TUNING
    if saved["split_sha256"] != ctx.split_sha256:
        raise ValueError(f"{path} was tuned on another split than {ctx.out / 'split.json'}; move it away to tune again")
    if bits is not None and saved["bits"] != bits:
        raise ValueError(f"{path} tuned at {saved['bits']} bits, this run asks for {bits}: "
                         f"use --tune-bits {saved['bits']} or another output folder")
    shared = shared_settings(ctx.common)
    if saved["shared"] != shared:
        raise ValueError(f"{path} was tuned under other shared settings "
                         f"({config_differences(saved['shared'], shared, asked='requested')}); "
                         "use the tuned settings, or tune in another output folder")


def run_tuning(ctx: BenchContext, methods: Sequence[Method], bits: int, grids: Grids | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Train every grid point of every tunable method in ``methods`` at ``bits`` bits (resumably).

    ``grids`` replaces the default grid of the methods it names (and gives one to others).
    Returns the tuning record written to ``OUT/tuning.json`` (methods tuned before and not
    named now are kept in it).
    """
    if len(ctx.split.val) == 0:
        raise ValueError("tuning picks settings on validation MAP: the split has no validation images "
                         "(use a --val-fraction above 0)")
    grids = dict(grids or {})
    to_tune: list[tuple[Method, dict]] = []
    for method in methods:
        grid = grids.get(method.name) or default_grid(method.name, bits)
        if method.kind != "deep" or grid is None:
            continue
        grid = {k: [float(v) for v in values] for k, values in grid.items()}
        clash = sorted(set(grid) & set(ctx.common))
        if clash:
            raise ValueError(f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} tuned for {method.name}: "
                             "do not set it for the whole bench when tuning")
        to_tune.append((method, grid))
    saved = read_tuning(ctx.out)
    _check_saved(saved, ctx, bits)
    plan: list[tuple[Method, dict, list[tuple[dict, str, dict | None]]]] = []
    for method, grid in to_tune:
        points = []
        for settings in grid_points(grid):
            tuned = method.with_tuning(settings, bits)
            name = point_name(method.name, bits, settings)
            # Every finished point is checked before anything trains, so a clash fails at once.
            done = load_finished(ctx.out / "tune" / "raw" / f"{name}.json", signature(tuned, bits, ctx), ctx,
                                 POINT_FORMAT)
            points.append((settings, name, done))
        plan.append((method, grid, points))
    record = saved or {"format": TUNING_FORMAT, "bits": int(bits), "split_sha256": ctx.split_sha256,
                       "seed": ctx.default_seed, "shared": shared_settings(ctx.common), "selection": SELECTION,
                       "methods": {}}
    total = sum(len(points) for _, _, points in plan)
    log(f"tuning {len(plan)} method(s) at {bits} bits on validation MAP: {total} grid points, "
        f"{sum(done is not None for _, _, points in plan for _, _, done in points)} finished before")
    number = 0
    for method, grid, points in plan:
        for i, (settings, name, done) in enumerate(points):
            number += 1
            words = ", ".join(f"{k}={v:g}" for k, v in settings.items())
            if done is None:
                log(f"[tune {number}/{total}] {method.name} at {bits} bits, {words} ...")
                done = _train_point(method.with_tuning(settings, bits), bits, ctx, name, settings)
                atomic_write_text(ctx.out / "tune" / "raw" / f"{name}.json", json.dumps(done, indent=2))
                points[i] = (settings, name, done)
            val = "none" if done["best_val_map"] is None else f"{done['best_val_map']:.4f}"
            log(f"[tune {number}/{total}] {method.name}, {words}: validation MAP {val} "
                f"(epoch {done['best_epoch']}), {done['train_seconds']:.1f}s")
            record["methods"][method.name] = _method_record(grid, points)
            record["updated"] = utc_now()
            atomic_write_text(ctx.out / TUNING, json.dumps(record, indent=2))
    return record


def _train_point(method: Method, bits: int, ctx: BenchContext, name: str, settings: dict) -> dict:
    """One grid point trained (or continued) under ``OUT/tune/runs/<name>``; validation numbers only."""
    trained = train_run(method, bits, ctx, ctx.out / "tune" / "runs" / name, ctx.common)
    return {"format": POINT_FORMAT, "method": method.name, "bits": int(bits), "settings": settings,
            "signature": signature(method, bits, ctx), "split_sha256": ctx.split_sha256,
            "train_seconds": float(trained.seconds), "finished": utc_now(), "run_dir": f"tune/runs/{name}",
            **training_record(trained)}


def _method_record(grid: dict, points: list[tuple[dict, str, dict | None]]) -> dict:
    rows = [{"settings": settings, "entry": f"tune/raw/{name}.json", "run_dir": f"tune/runs/{name}",
             "best_val_map": None if done is None else done["best_val_map"],
             "best_epoch": None if done is None else done["best_epoch"],
             "train_seconds": None if done is None else done["train_seconds"]} for settings, name, done in points]
    finished = [r for r in rows if r["best_val_map"] is not None]
    choice = max(finished, key=lambda r: r["best_val_map"]) if len(finished) == len(rows) else None  # first on ties
    return {"grid": grid, "points": rows, "finished": len(finished), "of": len(rows),
            "choice": None if choice is None else choice["settings"],
            "choice_val_map": None if choice is None else choice["best_val_map"],
            "choice_run": None if choice is None else choice["run_dir"]}


def tuned_methods(ctx: BenchContext, methods: Sequence[Method]) -> tuple[list[Method], dict | None]:
    """``methods`` with the choices of ``OUT/tuning.json`` (unchanged when the folder was never tuned).

    A method with a grid that the folder has no finished choice for is refused, and so is a
    tuning made under other shared settings than this run's.
    """
    saved = read_tuning(ctx.out)
    if saved is None:
        return list(methods), None
    _check_saved(saved, ctx, None)
    out = []
    for method in methods:
        rec = saved["methods"].get(method.name)
        if method.kind != "deep" or (rec is None and method.name not in TUNABLE):
            out.append(method)
            continue
        if rec is None or rec["choice"] is None:
            done = "no grid point" if rec is None else f"{rec['finished']} of {rec['of']} grid points"
            raise ValueError(f"{ctx.out} is a tuned folder, but {method.name} is not tuned yet ({done} finished); "
                             f"add --tune to tune it at {saved['bits']} bits first")
        out.append(method.with_tuning(rec["choice"], saved["bits"]))
    return out, saved


__all__ = ["LEARNING_RATES", "OWN", "TUNABLE", "TUNING", "default_grid", "grid_points", "point_name", "read_tuning",
           "run_tuning", "shared_settings", "tuned_methods"]
