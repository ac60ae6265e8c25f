"""What a bench writes for people: the Markdown table, the figures, and the facts to reproduce it.

The table is formatted from the entry records alone (the same dicts written to ``raw/`` and
``results.json``), so every number in ``results.md`` is a number of the JSON, rounded. With
several training seeds, a cell is the mean ± the sample standard deviation (n - 1) over the
seeds of that method and length, with the count: :func:`aggregate` computes them from the
entries and ``results.json`` keeps both the cells and every seed's entry.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from dnnh.metrics import RetrievalReport


@dataclass
class ResultRow:
    """One (method, bits) cell group of a results table."""

    method: str
    bits: int
    map: float
    precision_radius2: float
    train_seconds: float


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def format_table(rows: Sequence[ResultRow], map_label: str = "MAP", digits: int = 4) -> str:
    """Markdown: one line a method (in first-seen order), MAP / precision@r2 / train seconds per bits."""
    bits = sorted({r.bits for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    by = {(r.method, r.bits): r for r in rows}
    head = (["method"] + [f"{map_label} {b}" for b in bits] + [f"P@r2 {b}" for b in bits]
            + [f"train s {b}" for b in bits])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    num = f".{digits}f"
    for m in methods:
        cells = [_cell(getattr(by.get((m, b)), "map", None), num) for b in bits]
        cells += [_cell(getattr(by.get((m, b)), "precision_radius2", None), num) for b in bits]
        cells += [_cell(getattr(by.get((m, b)), "train_seconds", None), ".2f") for b in bits]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def entry_row(entry: dict) -> ResultRow:
    """The table row of an entry: MAP@K when the bench asked for a top K, else MAP."""
    report = entry["report"]
    value = report["map_at_k"] if report.get("topk") is not None else report["map"]
    return ResultRow(entry["method"], int(entry["bits"]), value, report["precision_radius"], entry["train_seconds"])


def entry_seed(entry: dict) -> int | None:
    """The training seed of a deep entry (None for shallow ones)."""
    return entry.get("seed", (entry.get("config") or {}).get("seed")) if entry["kind"] == "deep" else None


def _stats(values: list[float]) -> dict[str, Any]:
    return {"values": values, "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def aggregate(entries: Sequence[dict]) -> list[dict]:
    """One cell per (method, bits), in first-seen order: every seed's numbers, their mean and std.

    ``map`` is the table's number (MAP@K when the bench asked for a top K); ``std`` is the sample
    standard deviation (None for one seed).
    """
    groups: dict[tuple[str, int], list[dict]] = {}
    for e in entries:
        groups.setdefault((e["method"], int(e["bits"])), []).append(e)
    cells = []
    for (method, bits), group in groups.items():
        rows = [entry_row(e) for e in group]
        cells.append({"method": method, "bits": bits, "n": len(group), "seeds": [entry_seed(e) for e in group],
                      "map": _stats([r.map for r in rows]),
                      "precision_radius": _stats([r.precision_radius2 for r in rows]),
                      "train_seconds": _stats([r.train_seconds for r in rows])})
    return cells


def standing(cells: Sequence[dict]) -> list[dict]:
    """Per code length with a multi-seed cell: each method's rank and its gap to the best other method.

    The gap is ``mean - mean of the best other method`` (positive only for the leader, measured
    against the runner-up), and ``sd`` is that gap over ``sqrt(std_a**2 + std_b**2)``: how many
    standard deviations of the difference it spans. A method fitted once counts with std 0 (the
    shallow ones are fitted once on the saved split); ``sd`` is None when both stds are.
    """
    out = []
    for bits in sorted({c["bits"] for c in cells if c["n"] > 1}):
        ranked = sorted((c for c in cells if c["bits"] == bits), key=lambda c: -c["map"]["mean"])
        if len(ranked) < 2:  # a lone method has nothing to stand against
            continue
        rows = []
        for rank, c in enumerate(ranked, start=1):
            other = ranked[1] if rank == 1 else ranked[0]
            gap = c["map"]["mean"] - other["map"]["mean"]
            spread = float(np.hypot(c["map"]["std"] or 0.0, other["map"]["std"] or 0.0))
            rows.append({"method": c["method"], "rank": rank, "mean": c["map"]["mean"], "n": c["n"],
                         "against": other["method"], "gap": gap, "sd": gap / spread if spread > 0 else None})
        out.append({"bits": bits, "methods": rows})
    return out


def _standing_section(rows: Sequence[dict]) -> list[str]:
    if not rows:
        return []
    by = {(r["bits"], m["method"]): m for r in rows for m in r["methods"]}
    methods = sorted({m for _, m in by}, key=lambda m: sum(by.get((r["bits"], m), {"rank": 99})["rank"] for r in rows))
    lines = ["", "## Standing at the lengths with several seeds", "",
             "Rank by mean MAP, and the gap to the best other method (the leader's to the runner-up) in MAP and "
             "in standard deviations of the difference, sqrt(std_a² + std_b²); a method fitted once counts "
             "with std 0.", "",
             "| method | " + " | ".join(f"{r['bits']} bits" for r in rows) + " |", "|---|" + "---|" * len(rows)]
    for m in methods:
        cells = []
        for r in rows:
            x = by.get((r["bits"], m))
            sd = "" if x is None or x["sd"] is None else f", {x['sd']:+.1f} sd"
            cells.append("" if x is None else f"{x['rank']}: {x['gap']:+.4f} vs {x['against']}{sd}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def _mean_std(stats: dict, digits: int, n: int) -> str:
    if stats["std"] is None:
        return f"{stats['mean']:.{digits}f} ({n})"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} ({n})"


def format_seed_table(cells: Sequence[dict], map_label: str = "MAP", digits: int = 4) -> str:
    """The methods x bits table of a multi-seed bench: "mean ± std (n seeds)" in every cell."""
    bits = sorted({c["bits"] for c in cells})
    methods = list(dict.fromkeys(c["method"] for c in cells))
    by = {(c["method"], c["bits"]): c for c in cells}
    head = (["method"] + [f"{map_label} {b}" for b in bits] + [f"P@r2 {b}" for b in bits]
            + [f"train s {b}" for b in bits])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells_ = [_mean_std(by[m, b]["map"], digits, by[m, b]["n"]) if (m, b) in by else "" for b in bits]
        cells_ += [_mean_std(by[m, b]["precision_radius"], digits, by[m, b]["n"]) if (m, b) in by else ""
                   for b in bits]
        cells_ += [f"{by[m, b]['train_seconds']['mean']:.2f}" if (m, b) in by else "" for b in bits]
        lines.append(f"| {m} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def entry_report(entry: dict) -> RetrievalReport:
    return RetrievalReport.from_dict(entry["report"])


def utc_now() -> str:
    """The time stamps of bench records: UTC, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict:
    """Enough to judge timings: OS, CPU model and count, Python and library versions."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "torch_threads": torch.get_num_threads()}


def _deep_table(entries: Iterable[dict], seeds: bool = False) -> list[str]:
    seed_head, seed_rule = (" seed |", "---|") if seeds else ("", "")
    lines = [f"| method | bits |{seed_head} best epoch | best val MAP | epochs | images/s | triplets/s | train s |",
             f"|---|---|{seed_rule}---|---|---|---|---|---|"]
    for e in entries:
        seed = f" {entry_seed(e)} |" if seeds else ""
        lines.append(f"| {e['method']} | {e['bits']} |{seed} {e['best_epoch']} | {_cell(e['best_val_map'], '.4f')} | "
                     f"{e['epochs_run']} | {_cell(e['images_per_s'], '.0f')} | {_cell(e['triplets_per_s'], '.0f')} | "
                     f"{e['train_seconds']:.2f} |")
    return lines


def _tuning_section(tuning: dict | None, untuned: Sequence[str]) -> list[str]:
    """The grid, every point's validation MAP and the choice of each tuned method (OUT/tuning.json)."""
    if not tuning:
        return []
    shared = ", ".join(f"{k}={v}" for k, v in tuning["shared"].items()) or "defaults"
    lines = ["", f"## Tuning: {tuning['bits']} bits, validation MAP only", "",
             f"Every tunable method trained at each point of its grid at {tuning['bits']} bits with the same shared "
             f"settings (seed {tuning['seed']}; {shared}); the choice is {tuning['selection']}. The margin is "
             "carried to other lengths in proportion to the code length; other settings unchanged. Records: "
             "`tuning.json`, `tune/raw/`, runs `tune/runs/`.", "",
             "| method | settings | val MAP | best epoch | train s | chosen |", "|---|---|---|---|---|---|"]
    for name, rec in tuning["methods"].items():
        for point in rec["points"]:
            words = ", ".join(f"{k}={v:g}" for k, v in point["settings"].items())
            chosen = "**yes**" if point["settings"] == rec["choice"] else ""
            lines.append(f"| {name} | {words} | {_cell(point['best_val_map'], '.4f') or 'not run yet'} | "
                         f"{point['best_epoch'] or ''} | {_cell(point['train_seconds'], '.1f')} | {chosen} |")
    chosen = [f"{name} {', '.join(f'{k}={v:g}' for k, v in rec['choice'].items())}"
              for name, rec in tuning["methods"].items() if rec["choice"] is not None]
    if chosen:
        lines += ["", f"Chosen at {tuning['bits']} bits: {'; '.join(chosen)}."]
    if untuned:
        lines += ["", f"Not tuned (no grid; trained with their defaults): {', '.join(untuned)}."]
    return lines


def _speed_section(speed: Sequence[dict]) -> list[str]:
    if not speed:
        return []
    names = list(speed[0]["methods"])
    lines = ["", "## Training speed: time to reach a validation MAP", "",
             "Seconds of training (batches only, summed over epochs) until the first epoch whose validation MAP "
             "reaches the target; the default target is the lower of the two best validation MAPs.", "",
             "| bits | target val MAP | " + " | ".join(f"{n} s (epoch)" for n in names) + " |",
             "|" + "---|" * (2 + len(names))]
    for s in speed:
        cells = []
        for n in names:
            reached = s["methods"][n]["reached"]
            cells.append("not reached" if reached is None else f"{reached['seconds']:.1f} ({reached['epoch']})")
        lines.append(f"| {s['bits']} | {s['target_val_map']:.4f} | " + " | ".join(cells) + " |")
    return lines


def _all_classes_section(entries: Sequence[dict], multi_seed: bool, map_label: str) -> list[str]:
    """Protocol unseen's second table: the same queries against the whole database (unseen@all)."""
    every = [dict(e, report=e["report_all_classes"]) for e in entries if "report_all_classes" in e]
    if not every:
        return []
    table = (format_seed_table(aggregate(every), map_label=map_label) if multi_seed
             else format_table([entry_row(e) for e in every], map_label=map_label))
    return ["", "## Unseen classes against the whole database (unseen@all)", "",
            "Protocol unseen: the table above ranks the queries (all of the held-out classes, never trained on) "
            "against the held-out classes' database items (unseen@unseen); here the same queries against the "
            "whole database, whose other classes' items, the training images among them, are all irrelevant "
            "to them (Sablayrolles et al. 2017's unseen@all).", "", table]


def _features_lines(features: dict | None) -> list[str]:
    """The header line of a bench whose backbone is frozen: which features, how big, what computing them cost."""
    if not features:
        return []
    prep = features["preprocessing"]
    size = f"{prep['input_size']} px" + (f" (resized to {prep['resize']}, centre crop)" if prep.get("resize") else "")
    return [f"- frozen features: {features['backbone']} (weights sha256 {features['weights_sha256'][:12]}) at {size}, "
            f"{features['items']:,} items x {features['width']} {features['dtype']} ({features['size_mb']:.0f} MB, "
            f"`{features['entry']}`); computed once for every method, seed and length: {features['computed_images']:,} "
            f"images in {features['seconds']:.0f} s ({features['images_per_s'] or 0:.1f} img/s, "
            f"torch threads {features['torch_threads']}, {features['device']}) when first asked for"]


def _floors_section(floors: Sequence[dict], map_label: str) -> list[str]:
    """Ranking without hashing (raw pixels, frozen features): the lines the hashed methods stand above or below."""
    if not floors:
        return []
    unseen = any(f.get("map_all_classes") is not None for f in floors)
    head = f"| floor | {map_label} |" + (" unseen@all |" if unseen else "") + " s |"
    lines = ["", "## Floors: ranking without hashing", "",
             "The database ranked by a real-valued similarity of unhashed inputs (ties by index, the same MAP as "
             "the table): raw pixels in [0, 1] by cosine and by Euclidean distance, the frozen features by cosine. "
             "Records: `raw/floor_<name>.json`.", "", head, "|---|---|" + ("---|" if unseen else "") + "---|"]
    for f in floors:
        extra = f" {f['map_all_classes']:.4f} |" if unseen else ""
        lines.append(f"| {f['floor']} | {f['map']:.4f} |{extra} {f['seconds']:.1f} |")
    return lines


def format_markdown(summary: dict) -> str:
    """results.md from the combined results (the dict written to results.json)."""
    entries = summary["entries"]
    machine = summary["machine"]
    split = summary["split"]
    map_label = f"MAP@{summary['topk']}" if summary.get("topk") else "MAP"
    ranked = f"the top {summary['topk']}" if summary.get("topk") else "the whole database"
    lines = [f"# Hashing benchmark: {summary['dataset']['name']}", "",
             f"- command: `{summary['command']}`",
             f"- date: {summary['date']} (bench started {summary['started']})",
             f"- machine: {machine['cpu']} x{machine['cpu_count']}, {machine['platform']}, Python {machine['python']}, "
             f"torch {machine['torch']}",
             f"- data: {summary['dataset']['name']}, {summary['dataset']['size']} items; {split['summary']} "
             f"(split.json, sha256 {split['sha256'][:12]})",
             *([f"- deep methods share: {summary['deep_settings']}"] if summary["deep_settings"] else []),
             *([f"- shallow methods read: {summary['shallow_inputs']}"] if summary.get("shallow_inputs") else []),
             *_features_lines(summary.get("features")),
             f"- {map_label}: mean average precision over {ranked} (Hamming ranking, ties by database index); "
             f"P@r{summary['radius']}: precision within Hamming radius {summary['radius']} (an empty ball "
             "scores 0); train s: wall seconds to fit (deep: the whole run, with per-epoch validation)", ""]
    seeds = summary.get("seeds") or []
    if len(seeds) > 1:
        at = summary.get("seeds_at")
        lines += [f"Deep methods trained once per seed ({', '.join(map(str, seeds))}"
                  + (f"; at {', '.join(map(str, at))} bits, one seed at the other lengths" if at else "")
                  + ") on the same split: each cell is the mean ± the sample standard deviation over seeds, with "
                  "the number of seeds; shallow methods are fitted once. Every seed's number: `results.json` "
                  "(`cells`, `entries`); the curves are of the first seed.", ""]
    if summary["missing"]:
        lines += [f"Not finished yet: {', '.join(summary['missing'])}.", ""]
    if len(seeds) > 1:
        lines.append(format_seed_table(summary["cells"], map_label=map_label))
        lines += _standing_section(standing(summary["cells"]))
    else:
        lines.append(format_table([entry_row(e) for e in entries], map_label=map_label))
    lines += _all_classes_section(entries, multi_seed=len(seeds) > 1, map_label=map_label)
    lines += _floors_section(summary.get("floors") or [], map_label)
    deep = [e for e in entries if e["kind"] == "deep"]
    if deep:
        lines += ["", "## Deep runs", ""] + _deep_table(deep, seeds=len(seeds) > 1)
    lines += _tuning_section(summary.get("tuning"), summary.get("untuned") or [])
    lines += _speed_section(summary["speed"])
    lines += ["", "## Methods", ""]
    for name, description in dict((e["method"], e["description"]) for e in entries).items():
        lines.append(f"- **{name}**: {description}")
    lines += ["", "Raw records: `raw/<method>_<bits>.json` (other seeds: `_s<seed>`) and `results.json`; codes: "
              "`codes/`; deep runs: `runs/<method>_<bits>/`.", ""]
    return "\n".join(lines)


def write_plots(out: Path, entries: Sequence[dict], dataset_name: str,
                cells: Sequence[dict] | None = None) -> list[Path]:
    """pr_curves_<bits>.png and precision_at_k_<bits>.png, every method of that code length on one
    figure; with more than one code length also map_vs_bits.png, every method on one figure.

    ``entries``: one per (method, bits) (the first seed's). ``cells`` (:func:`aggregate`, several
    seeds): map_vs_bits.png then plots each cell's mean MAP with its standard deviation as an error bar.
    """
    from dnnh.metrics import plot_map_vs_bits, plot_pr_curves, plot_precision_at_k

    reports = {(e["method"], int(e["bits"])): entry_report(e) for e in entries}
    lengths = sorted({bits for _, bits in reports})
    paths = []
    if len(lengths) > 1:
        series: dict[str, dict[int, float]] = {}
        errors: dict[str, dict[int, float]] | None = None
        if cells is None:
            for (method, bits), report in reports.items():
                series.setdefault(method, {})[bits] = report.map
        else:
            errors = {}
            for c in cells:
                series.setdefault(c["method"], {})[c["bits"]] = c["map"]["mean"]
                errors.setdefault(c["method"], {})[c["bits"]] = c["map"]["std"] or 0.0
        title = f"{dataset_name}: MAP against code length" + (" (mean ± std over seeds)" if cells else "")
        paths.append(plot_map_vs_bits(series, out / "map_vs_bits.png", title=title, errors=errors))
    for bits in lengths:
        of_length = {method: report for (method, b), report in reports.items() if b == bits}
        paths.append(plot_pr_curves(of_length, out / f"pr_curves_{bits}.png",
                                    title=f"{dataset_name}, {bits} bits: precision-recall over Hamming radius"))
        paths.append(plot_precision_at_k(of_length, out / f"precision_at_k_{bits}.png",
                                         title=f"{dataset_name}, {bits} bits: precision at top k"))
    return paths
