"""``run_bench``: every method at every code length on one saved split, into one output folder.

Layout of ``OUT``::

    bench.json                  the split's settings, so a rerun cannot silently draw another
    split.json                  the one split every entry is scored on (written first)
    raw/<method>_<bits>.json    one record per finished entry (numbers, timings, history);
                                deep entries of other training seeds: raw/<method>_<bits>_s<seed>.json
    codes/<method>_<bits>_{query,database}.npz   the codes behind each record
    runs/<method>_<bits>/       deep training runs (checkpoints; resumable), runs/<method>_<bits>_s<seed>/
    tuning.json, tune/          the tuning of the deep methods (:mod:`dnnh.bench.tuning`), when tuned
    raw/floor_<name>.json       with --floors: ranking without hashing (:mod:`dnnh.bench.floors`)
    results.json, results.md    all entries of this invocation, the table and its context
    pr_curves_<bits>.png, precision_at_k_<bits>.png, map_vs_bits.png (two or more lengths;
                                error bars with several seeds)

Resuming is by files: a finished entry (its raw JSON) is read back, not recomputed; a deep run
whose folder holds a checkpoint is continued. A rerun that would score on another split or under
other settings than a finished entry is refused with a message saying what differs, so a table
never mixes them; threads, worker counts and settings a method never reads may change between runs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dnnh.atomic import atomic_write_text
from dnnh.bench.adopt import adopt_run
from dnnh.bench.floors import run_floors
from dnnh.bench.methods import Method, resolve_methods
from dnnh.bench.report import aggregate, format_markdown, machine_info, utc_now, write_plots
from dnnh.bench.runners import RUNNERS, BenchContext, load_finished, signature
from dnnh.bench.speed import SPEED_PAIR, compare_speed
from dnnh.bench.tuning import Grids, read_tuning, run_tuning, tuned_methods
from dnnh.data.fingerprint import fingerprint_difference
from dnnh.data.sources import DataSource, SplitSpec
from dnnh.data.splits import Split
from dnnh.locks import lock_folder

BENCH_FORMAT = "dnnh-bench/1"


@dataclass
class BenchResult:
    out: Path
    entries: list[dict]
    split: Split
    speed: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def parse_bits(nbits: Sequence[int] | str) -> list[int]:
    """Code lengths from a list or "12,24,32": positive integers, repeats dropped, order kept."""
    items = nbits.split(",") if isinstance(nbits, str) else list(nbits)
    out = []
    for b in items:
        try:
            value = int(str(b).strip())
        except ValueError:
            raise ValueError(f"bits must be positive integers, got {b!r}") from None
        if value <= 0 or str(value) != str(b).strip():
            raise ValueError(f"bits must be positive integers, got {b!r}")
        out.append(value)
    if not out:
        raise ValueError("no code lengths given in bits")
    return list(dict.fromkeys(out))


def parse_seeds(seeds: Sequence[int] | str) -> list[int]:
    """Training seeds from a list or "0,1,2": non-negative integers, repeats dropped, order kept."""
    items = seeds.split(",") if isinstance(seeds, str) else list(seeds)
    out = []
    for s in items:
        text = str(s).strip()
        if not text.isdigit():
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        out.append(int(text))
    if not out:
        raise ValueError("no seeds given")
    return list(dict.fromkeys(out))


def _load_dataset(data: Any) -> tuple[Any, DataSource | None]:
    """The dataset and where it came from, for a DataSource, a name or path, or a loaded dataset."""
    if isinstance(data, (str, Path)):
        data = DataSource(str(data))
    if isinstance(data, DataSource):
        return data.load(), data
    if not hasattr(data, "labels"):
        raise TypeError(f"data must be a DataSource, a dataset name, a path or a loaded dataset, "
                        f"got {type(data).__name__}")
    return data, DataSource.of(data)


def _prepare_split(out: Path, dataset: Any, split_settings: dict, spec: SplitSpec) -> Split:
    """OUT/split.json: reused when present (after checking its settings), else drawn and written first."""
    split_file = spec.file
    split_path, bench_path = out / "split.json", out / "bench.json"
    fingerprint = dataset.fingerprint()
    if bench_path.exists():
        saved = json.loads(bench_path.read_text())
        difference = fingerprint_difference(saved.get("data_fingerprint"), fingerprint)
        if difference:
            raise ValueError(f"the data differs from what {out} was benched on: {difference}; its split no longer "
                             "points at the same items. Bench the data as it is now into another folder")
        if saved.get("split_settings") != split_settings:
            diff = {k: (saved.get("split_settings", {}).get(k), v) for k, v in split_settings.items()
                    if saved.get("split_settings", {}).get(k) != v}
            raise ValueError(f"{out} holds a bench on another split (setting: (saved, requested)) {diff}; "
                             "use the saved settings or another output folder")
    if split_path.exists():
        split = Split.load(split_path)
        if split_file is not None and Split.load(split_file) != split:
            raise ValueError(f"--split {split_file} differs from the split {split_path} this folder was scored on")
    elif split_file is not None:
        split = Split.load(split_file)
        split.save(split_path)
    else:
        split = spec.draw(dataset)
        split.save(split_path)
    split.check_fits(len(dataset))
    if not bench_path.exists():
        atomic_write_text(bench_path, json.dumps({"format": BENCH_FORMAT, "started": utc_now(),
                                                  "split_settings": split_settings,
                                                  "data_fingerprint": fingerprint}, indent=2))
    return split


def _speed(entries: dict[tuple[str, int], dict], nbits_list: list[int], target: float | None) -> list[dict]:
    """The dnnh / dnnh-random speed comparison per length, on ``entries`` {(method, bits): first seed's entry}."""
    out = []
    for b in nbits_list:
        pair = [entries.get((name, b)) for name in SPEED_PAIR]
        if all(pair):
            histories = {e["method"]: e["history"] for e in pair}
            if all(any(r.get("val_map") is not None for r in h) for h in histories.values()):
                out.append({"bits": b, **compare_speed(histories, target)})
    return out


@dataclass(frozen=True)
class BenchOptions:
    """How one bench invocation runs, besides what and where (see :func:`run_bench` for each field).

    Made once from :func:`run_bench`'s keywords, which it checks and normalises (seeds parsed,
    ``tune_bits`` or ``tune_only`` implying ``tune``), then handed down whole.
    """

    split: SplitSpec = SplitSpec()
    training: Mapping[str, Any] | None = None
    topk: int | None = None
    radius: int = 2
    target_map: float | None = None
    command: str | None = None
    progress: bool = True
    plots: bool = True
    log: Callable[[str], None] = print
    seeds: Sequence[int] | str | None = None
    seeds_at: Sequence[int] | str | None = None
    tune: bool = False
    tune_bits: int | None = None
    tune_only: bool = False
    grids: Grids | None = None
    adopt: Sequence[str | Path] = ()
    floors: bool = False

    def __post_init__(self) -> None:
        seeds = parse_seeds(self.seeds) if self.seeds is not None else None
        at = parse_bits(self.seeds_at) if self.seeds_at is not None else None
        if at is not None and seeds is None:
            raise ValueError("seeds_at names the lengths that get every seed: give the seeds too")
        tune_bits = parse_bits([self.tune_bits])[0] if self.tune_bits is not None else None
        normalised = {"seeds": seeds, "seeds_at": at, "tune_bits": tune_bits, "adopt": tuple(self.adopt),
                      "tune": self.tune or self.tune_only or tune_bits is not None}
        for name, value in normalised.items():
            object.__setattr__(self, name, value)


def run_bench(data: DataSource | str | Path | Any, out: str | Path, methods: Sequence[str] | str,
              nbits: Sequence[int] | str = (12, 24, 32, 48), options: BenchOptions | None = None,
              **settings: Any) -> BenchResult:
    """Run ``methods`` x ``nbits`` on ``data`` into ``out``.

    ``options``: a :class:`BenchOptions`; ``settings``: its fields by keyword instead (or on top):

    ``data``: a :class:`DataSource`, a dataset name or path, or a loaded dataset. ``split``: how
    to split it (shared by all entries). ``training``: :class:`~dnnh.config.TrainConfig`
    fields every deep method shares (epochs, backbone, input_size, threads, ...; the seed
    defaults to the split's); unset fields keep each recipe's default. ``target_map`` fixes the
    target of the dnnh / dnnh-random speed comparison. ``command`` is recorded in results.md
    (the CLI passes its command line). ``progress``: progress bars; ``plots``: the figures;
    ``log``: where the one line per entry goes.

    ``seeds``: train each deep entry once per training seed (separate entries; the default seed
    keeps the plain name); ``seeds_at``: the lengths that get every seed (default: all; the
    others get the first). ``tune`` / ``tune_bits``: first tune every tunable deep method on
    validation MAP at ``tune_bits`` (default: the folder's tuning length, else the largest
    length), see :mod:`dnnh.bench.tuning`; ``grids`` replaces the default grid of the methods it
    names; ``tune_only``: stop after tuning. A folder once tuned trains each tuned method with
    its choice. ``adopt``: run folders trained outside the bench, brought in as the entries they
    match (:mod:`dnnh.bench.adopt`). ``floors``: also score ranking without hashing (raw pixels by
    cosine and Euclidean distance; the frozen features by cosine), :mod:`dnnh.bench.floors`.

    With ``training={"backbone": B, "backbone_weights": FILE, "freeze_backbone": True}`` the
    backbone's features are computed once, before anything trains (``feature_cache``: where they
    are kept), and every deep method trains its head on them; the shallow methods read them too.
    """
    opts = replace(options, **settings) if options is not None else BenchOptions(**settings)
    chosen = resolve_methods(methods)
    nbits_list = parse_bits(nbits)
    if opts.seeds_at is not None and set(opts.seeds_at) - set(nbits_list):
        raise ValueError(f"seeds_at {sorted(set(opts.seeds_at) - set(nbits_list))} not among the bench's lengths "
                         f"{nbits_list}")
    out = Path(out)
    with lock_folder(out, "bench folder"):
        return _run_bench(data, out, chosen, nbits_list, opts)


def _run_bench(data: Any, out: Path, chosen: list[Method], nbits_list: list[int], opts: BenchOptions) -> BenchResult:
    """Set up, tune if asked, plan the entries, then run each one not finished before."""
    ctx = _context(data, out, opts)
    for m in chosen:  # settings errors (a clash of shared options) before hours of training
        if m.kind == "deep":
            for b in nbits_list:
                m.train_config(b, ctx.common)
    table = ctx.frozen_features()  # once, before any run: every head, shallow method and floor reads them
    if table is not None:
        ctx.log(f"frozen {table.record['key']['backbone']} features of {len(table.items):,} items: {table.path}")
    name = getattr(ctx.dataset, "name", str(data))
    command = opts.command or f"dnnh.bench.run_bench({name!r}, {str(out)!r}, methods={[m.name for m in chosen]}, " \
                              f"nbits={nbits_list})"
    if opts.tune:  # at the length asked for, else the one this folder was tuned at, else the largest
        saved = read_tuning(out)
        bits = opts.tune_bits or (saved["bits"] if saved is not None else max(nbits_list))
        run_tuning(ctx, chosen, bits, opts.grids, opts.log)
    chosen, tuning = tuned_methods(ctx, chosen)
    ctx.methods = {m.name: m for m in chosen}
    layout = _plan(ctx, chosen, nbits_list, opts, tuning)
    entries: dict[tuple[str, int, int | None], dict] = {}
    if opts.floors:
        ctx.floors = run_floors(ctx, opts.log)
    if opts.tune_only:
        summary = _write_summary(out, ctx, layout, entries, command, opts.target_map, plots=False)
        return BenchResult(out=out, entries=[], split=ctx.split, speed=[], summary=summary)
    _run_entries(ctx, layout, entries, lambda: _write_summary(out, ctx, layout, entries, command, opts.target_map,
                                                             plots=False))
    summary = _write_summary(out, ctx, layout, entries, command, opts.target_map, plots=opts.plots)
    ordered = [entries[k] for k in layout.keys()]
    return BenchResult(out=out, entries=ordered, split=ctx.split, speed=summary["speed"], summary=summary)


def _context(data: Any, out: Path, opts: BenchOptions) -> BenchContext:
    """The data loaded, the split written (or checked) and what every entry shares."""
    dataset, source = _load_dataset(data)
    name = getattr(dataset, "name", str(data))
    split_settings = {"data": source.data if source is not None else name, **opts.split.settings()}
    the_split = _prepare_split(out, dataset, split_settings, opts.split)
    common = dict(opts.training or {})
    common.setdefault("seed", opts.split.seed)
    return BenchContext(dataset=dataset, source=source, split=the_split, out=out, common=common,
                        seed=opts.split.seed, topk=opts.topk, radius=opts.radius, progress=opts.progress,
                        log=opts.log, seeds=list(opts.seeds or []),
                        split_sha256=hashlib.sha256((out / "split.json").read_bytes()).hexdigest())


def _plan(ctx: BenchContext, chosen: list[Method], nbits_list: list[int], opts: BenchOptions,
          tuning: dict | None) -> "_Layout":
    """Every (method, bits, seed) entry in order; adopted runs and the tuning's chosen runs brought in."""
    seeds = list(opts.seeds or [ctx.default_seed])
    seeds_at = opts.seeds_at

    def seeds_of(m: Method, b: int) -> list[int | None]:
        if m.kind != "deep":
            return [None]
        return seeds if seeds_at is None or b in seeds_at else seeds[:1]

    layout = _Layout(chosen, nbits_list, seeds_of, seeds, seeds_at, tuning)
    todo = layout.todo()
    for run in opts.adopt:
        adopt_run(run, ctx, todo, opts.log)
    if tuning is not None:  # the chosen tuning run is the table's entry at the tuning length and seed
        for m, b, s in todo:
            rec = tuning["methods"].get(m.name)
            fresh = not ctx.run_dir(m, b, s).exists() and not (ctx.out / "raw" / f"{ctx.entry_name(m, b, s)}.json").exists()
            if m.tuned and rec and b == tuning["bits"] and ctx.common_for(s)["seed"] == tuning["seed"] and fresh:
                adopt_run(ctx.out / rec["choice_run"], ctx, [(m, b, s)], opts.log)
    return layout


def _run_entries(ctx: BenchContext, layout: "_Layout", entries: dict[tuple[str, int, int | None], dict],
                 write_summary: Callable[[], dict]) -> None:
    """Each entry: read back when finished before, else run and saved; the summary rewritten after each."""
    todo, several = layout.todo(), len(layout.seeds) > 1
    # Every finished entry is checked before anything runs, so a settings clash fails at once.
    paths = {(m.name, b, s): ctx.out / "raw" / f"{ctx.entry_name(m, b, s)}.json" for m, b, s in todo}
    finished = {(m.name, b, s): load_finished(paths[m.name, b, s], signature(m, b, ctx, s), ctx)
                for m, b, s in todo}
    ctx.log(f"{getattr(ctx.dataset, 'name', '?')}: {len(ctx.dataset)} items; {ctx.split.summary()}; {len(todo)} "
            f"entries into {ctx.out}, {sum(e is not None for e in finished.values())} finished before")
    for number, (method, b, seed) in enumerate(todo, start=1):
        key = (method.name, b, seed)
        what = f"{method.name} at {b} bits" + (f", seed {seed}" if several and seed is not None else "")
        entry = finished[key]
        if entry is None:
            ctx.log(f"[{number}/{len(todo)}] {what} ...")
            entry = RUNNERS[method.kind](method, b, ctx, seed)
            atomic_write_text(paths[key], json.dumps(entry, indent=2))
            status = "done"
        else:
            status = "finished before, read back"
        entries[key] = entry
        ctx.log(f"[{number}/{len(todo)}] {what}: MAP {entry['report']['map']:.4f}, "
                f"{entry['train_seconds']:.1f}s ({status})")
        write_summary()


@dataclass
class _Layout:
    """What one invocation asked for: methods (tuned), lengths, the seeds of each, the tuning."""

    chosen: list[Method]
    nbits: list[int]
    seeds_of: Callable[[Method, int], list[int | None]]
    seeds: list[int]
    seeds_at: list[int] | None
    tuning: dict | None

    def keys(self) -> list[tuple[str, int, int | None]]:
        """(method, bits, seed) in the table's order: by method, then length, then seed."""
        return [(m.name, b, s) for m in self.chosen for b in self.nbits for s in self.seeds_of(m, b)]

    def todo(self) -> list[tuple[Method, int, int | None]]:
        """The entries in the order they run: shallow methods first, then deep, then on deep features."""
        order = sorted(self.chosen, key=lambda m: ("shallow", "deep", "features").index(m.kind))
        return [(m, b, s) for b in self.nbits for m in order for s in self.seeds_of(m, b)]


def _write_summary(out: Path, ctx: BenchContext, layout: _Layout, entries: dict[tuple[str, int, int | None], dict],
                   command: str, target_map: float | None, plots: bool) -> dict:
    """results.json and results.md for the entries finished so far (rewritten after each one)."""
    chosen, nbits_list, several = layout.chosen, layout.nbits, len(layout.seeds) > 1
    ordered = [entries[k] for k in layout.keys() if k in entries]
    first = {}  # (method, bits) -> the first seed's entry: curves, speed
    for (method, b, _), entry in ((k, entries[k]) for k in layout.keys() if k in entries):
        first.setdefault((method, b), entry)
    bench = json.loads((out / "bench.json").read_text())
    summary = {
        "format": BENCH_FORMAT, "command": command, "date": utc_now(), "started": bench["started"],
        "machine": machine_info(),
        "dataset": {"name": getattr(ctx.dataset, "name", "?"), "size": len(ctx.dataset),
                    "multilabel": bool(ctx.dataset.multilabel)},
        "split": {"summary": ctx.split.summary(), "sha256": ctx.split_sha256, "settings": bench["split_settings"],
                  "n_query": len(ctx.split.query), "n_database": len(ctx.split.database)},
        "methods": [m.name for m in chosen], "bits": nbits_list, "topk": ctx.topk, "radius": ctx.radius,
        "deep_settings": _deep_settings(chosen, nbits_list, ctx.common),
        "missing": [f"{m} at {b} bits" + (f", seed {s}" if several and s is not None else "")
                    for m, b, s in layout.keys() if (m, b, s) not in entries],
        "speed": _speed(first, nbits_list, target_map),
    }
    if several:
        summary.update(seeds=layout.seeds, seeds_at=layout.seeds_at, cells=aggregate(ordered))
    if any(m.kind == "shallow" for m in chosen):
        summary["shallow_inputs"] = ctx.inputs_label()
    table = ctx.frozen_features()
    if table is not None:
        summary["features"] = _features_record(table)
    if ctx.floors:
        summary["floors"] = ctx.floors
    if layout.tuning is not None:
        summary["tuning"] = layout.tuning
        summary["tuned"] = {m.name: dict(m.tuned) for m in chosen if m.tuned}
        summary["untuned"] = [m.name for m in chosen if m.kind == "deep" and not m.tuned]
    summary["entries"] = ordered
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "results.md", format_markdown(summary))
    if plots and ordered:
        write_plots(out, list(first.values()), summary["dataset"]["name"], cells=summary.get("cells"))
    return summary


def _deep_settings(chosen: list[Method], nbits_list: list[int], common: dict[str, Any]) -> str:
    """The backbone and input size every deep method uses, and the options the bench set for all."""
    from dnnh.training.finetune import image_sizes
    from dnnh.training.head_training import uses_feature_cache

    deep = [m for m in chosen if m.kind == "deep"]
    if not deep:
        return ""
    config = deep[0].train_config(nbits_list[0], common)
    size, resize = image_sizes(config)
    options = ", ".join(f"{k}={v}" for k, v in sorted(common.items()))
    how = ("; the backbone frozen: each head trained on its cached features (no augmentation)"
           if uses_feature_cache(config) else "")
    return (f"backbone {config.backbone}, input size {size}" + (f" (resized to {resize}, centre crop)" if resize else "")
            + f"{how}; options set for all: {options}")


def _features_record(table: Any) -> dict:
    """What results say about the frozen features: the entry, its size, and how long computing it took."""
    record = table.record
    rows = table.path.parent / record["file"]
    return {"backbone": record["key"]["backbone"], "weights_sha256": record["key"]["weights_sha256"],
            "preprocessing": record["key"]["preprocessing"], "entry": str(table.path), "items": len(table.items),
            "width": table.width, "dtype": record["dtype"], "size_mb": rows.stat().st_size / 1e6,
            "computed_images": record["computed_images"], "seconds": record["seconds"],
            "images_per_s": record["images_per_s"], "torch_threads": record.get("torch_threads"),
            "device": record.get("device")}


def shell_command(argv: Sequence[str]) -> str:
    """A command line as it would be typed, for the record in results.md."""
    return shlex.join(["dnnh", *argv])


__all__ = ["BenchOptions", "BenchResult", "parse_bits", "parse_seeds", "run_bench", "shell_command"]
