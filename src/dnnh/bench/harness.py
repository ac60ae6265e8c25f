"""``run_bench``: every method at every code length on one saved split, into one output folder.

Layout of ``OUT``::

    bench.json                  the split's settings, so a rerun cannot silently draw another
    split.json                  the one split every entry is scored on (written first)
    raw/<method>_<bits>.json    one record per finished entry (numbers, timings, history)
    codes/<method>_<bits>_{query,database}.npz   the codes behind each record
    runs/<method>_<bits>/       deep training runs (checkpoints; resumable)
    results.json, results.md    all entries of this invocation, the table and its context
    pr_curves_<bits>.png, precision_at_k_<bits>.png, map_vs_bits.png (two or more lengths)

Resuming is by files: a finished entry (its raw JSON) is read back, not recomputed; a deep run
whose folder holds a checkpoint is continued. A rerun that would score on another split or under
other settings than a finished entry is refused with a message saying what differs, so a table
never mixes them; threads, worker counts and settings a method never reads may change between runs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dnnh.atomic import atomic_write_text
from dnnh.bench.methods import Method, resolve_methods
from dnnh.bench.report import format_markdown, machine_info, utc_now, write_plots
from dnnh.bench.runners import ENTRY_FORMAT, RUNNERS, BenchContext, comparable, signature
from dnnh.bench.speed import SPEED_PAIR, compare_speed
from dnnh.data.fingerprint import fingerprint_difference
from dnnh.data.sources import DataSource, SplitSpec
from dnnh.data.splits import Split
from dnnh.locks import lock_folder
from dnnh.training.config import config_differences

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


def _same_split(a: Split, b: Split) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("query", "database", "train", "val"))


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
        if split_file is not None and not _same_split(Split.load(split_file), split):
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


def _load_finished(path: Path, method: Method, nbits: int, ctx: BenchContext) -> dict | None:
    if not path.exists():
        return None
    entry = json.loads(path.read_text())
    if entry.get("format") != ENTRY_FORMAT:
        raise ValueError(f"{path} is not a bench entry (format {entry.get('format')!r}); move it away")
    if entry["split_sha256"] != ctx.split_sha256:
        raise ValueError(f"{path} was scored on another split than {ctx.out / 'split.json'}; delete it to redo it")
    # Only the saved side may predate reduced signatures; signature() gives the reduced form.
    saved, wanted = comparable(entry["signature"]), signature(method, nbits, ctx)
    if saved != wanted:
        differences = config_differences(saved, wanted, asked="requested")
        raise ValueError(f"{path} was made with other settings than this run asks for ({differences}); "
                         f"use the saved settings, another output folder, or delete {path.name} "
                         f"(and runs/{path.stem}) to redo it")
    return entry


def _speed(entries: dict[tuple[str, int], dict], nbits_list: list[int], target: float | None) -> list[dict]:
    out = []
    for b in nbits_list:
        pair = [entries.get((name, b)) for name in SPEED_PAIR]
        if all(pair):
            histories = {e["method"]: e["history"] for e in pair}
            if all(any(r.get("val_map") is not None for r in h) for h in histories.values()):
                out.append({"bits": b, **compare_speed(histories, target)})
    return out


def run_bench(data: DataSource | str | Path | Any, out: str | Path, methods: Sequence[str] | str,
              nbits: Sequence[int] | str = (12, 24, 32, 48), *, split: SplitSpec = SplitSpec(),
              training: Mapping[str, Any] | None = None, topk: int | None = None, radius: int = 2,
              target_map: float | None = None, command: str | None = None, progress: bool = True,
              plots: bool = True, log: Callable[[str], None] = print) -> BenchResult:
    """Run ``methods`` x ``nbits`` on ``data`` into ``out``.

    ``data``: a :class:`DataSource`, a dataset name or path, or a loaded dataset. ``split``: how
    to split it (shared by all entries). ``training``: :class:`~dnnh.training.config.TrainConfig`
    fields every deep method shares (epochs, backbone, input_size, threads, ...; the seed
    defaults to the split's); unset fields keep each recipe's default. ``target_map`` fixes the
    target of the dnnh / dnnh-random speed comparison. ``command`` is recorded in results.md
    (the CLI passes its command line).
    """
    chosen = resolve_methods(methods)
    nbits_list = parse_bits(nbits)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"bench folder {out} is a file; choose a folder")
    with lock_folder(out, "bench folder"):
        return _run_bench(data, out, chosen, nbits_list, split, training, topk, radius, target_map, command,
                          progress, plots, log)


def _run_bench(data: Any, out: Path, chosen: list[Method], nbits_list: list[int], split: SplitSpec,
               training: Mapping[str, Any] | None, topk: int | None, radius: int, target_map: float | None,
               command: str | None, progress: bool, plots: bool, log: Callable[[str], None]) -> BenchResult:
    dataset, source = _load_dataset(data)
    name = getattr(dataset, "name", str(data))
    split_settings = {"data": source.data if source is not None else name, **split.settings()}
    the_split = _prepare_split(out, dataset, split_settings, split)
    common = dict(training or {})
    common.setdefault("seed", split.seed)
    ctx = BenchContext(dataset=dataset, source=source, split=the_split, out=out, common=common, seed=split.seed,
                       topk=topk, radius=radius, progress=progress, log=log,
                       split_sha256=hashlib.sha256((out / "split.json").read_bytes()).hexdigest())
    for m in chosen:  # settings errors (a clash of shared options) before hours of training
        if m.kind == "deep":
            for b in nbits_list:
                m.train_config(b, common)
    command = command or f"dnnh.bench.run_bench({name!r}, {str(out)!r}, methods={[m.name for m in chosen]}, " \
                         f"nbits={nbits_list})"
    order = sorted(chosen, key=lambda m: ("shallow", "deep", "features").index(m.kind))
    todo = [(m, b) for b in nbits_list for m in order]
    entries: dict[tuple[str, int], dict] = {}
    # Every finished entry is checked before anything runs, so a settings clash fails at once.
    paths = {(m.name, b): out / "raw" / f"{ctx.entry_name(m, b)}.json" for m, b in todo}
    finished = {(m.name, b): _load_finished(paths[m.name, b], m, b, ctx) for m, b in todo}
    log(f"{name}: {len(dataset)} items; {the_split.summary()}; {len(todo)} entries into {out}, "
        f"{sum(e is not None for e in finished.values())} finished before")
    for number, (method, b) in enumerate(todo, start=1):
        path = paths[method.name, b]
        entry = finished[method.name, b]
        if entry is None:
            log(f"[{number}/{len(todo)}] {method.name} at {b} bits ...")
            entry = RUNNERS[method.kind](method, b, ctx)
            atomic_write_text(path, json.dumps(entry, indent=2))
            status = "done"
        else:
            status = "finished before, read back"
        entries[method.name, b] = entry
        log(f"[{number}/{len(todo)}] {method.name} at {b} bits: MAP {entry['report']['map']:.4f}, "
            f"{entry['train_seconds']:.1f}s ({status})")
        _write_summary(out, ctx, chosen, nbits_list, entries, command, target_map, plots=False)
    summary = _write_summary(out, ctx, chosen, nbits_list, entries, command, target_map, plots=plots)
    ordered = [entries[m.name, b] for m in chosen for b in nbits_list]
    return BenchResult(out=out, entries=ordered, split=the_split, speed=summary["speed"], summary=summary)


def _write_summary(out: Path, ctx: BenchContext, chosen: list[Method], nbits_list: list[int],
                   entries: dict[tuple[str, int], dict], command: str, target_map: float | None,
                   plots: bool) -> dict:
    """results.json and results.md for the entries finished so far (rewritten after each one)."""
    ordered = [entries[m.name, b] for m in chosen for b in nbits_list if (m.name, b) in entries]
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
        "missing": [f"{m.name} at {b} bits" for m in chosen for b in nbits_list if (m.name, b) not in entries],
        "speed": _speed(entries, nbits_list, target_map), "entries": ordered,
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    atomic_write_text(out / "results.md", format_markdown(summary))
    if plots and ordered:
        write_plots(out, ordered, summary["dataset"]["name"])
    return summary


def _deep_settings(chosen: list[Method], nbits_list: list[int], common: dict[str, Any]) -> str:
    """The backbone and input size every deep method uses, and the options the bench set for all."""
    from dnnh.nn import PRESETS

    deep = [m for m in chosen if m.kind == "deep"]
    if not deep:
        return ""
    config = deep[0].train_config(nbits_list[0], common)
    size = config.input_size or PRESETS[config.backbone].input_size
    options = ", ".join(f"{k}={v}" for k, v in sorted(common.items()))
    return f"backbone {config.backbone}, input size {size}; options set for all: {options}"


def shell_command(argv: Sequence[str]) -> str:
    """A command line as it would be typed, for the record in results.md."""
    return shlex.join(["dnnh", *argv])


__all__ = ["BenchResult", "parse_bits", "run_bench", "shell_command"]
