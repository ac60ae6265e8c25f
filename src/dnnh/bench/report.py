"""What a bench writes for people: the Markdown table, the figures, and the facts to reproduce it.

The table is formatted from the entry records alone (the same dicts written to ``raw/`` and
``results.json``), so every number in ``results.md`` is a number of the JSON, rounded.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

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


def _deep_table(entries: Iterable[dict]) -> list[str]:
    lines = ["| method | bits | best epoch | best val MAP | epochs | images/s | triplets/s | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['method']} | {e['bits']} | {e['best_epoch']} | {_cell(e['best_val_map'], '.4f')} | "
                     f"{e['epochs_run']} | {_cell(e['images_per_s'], '.0f')} | {_cell(e['triplets_per_s'], '.0f')} | "
                     f"{e['train_seconds']:.2f} |")
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
             f"- {map_label}: mean average precision over {ranked} (Hamming ranking, ties by database index); "
             f"P@r{summary['radius']}: precision within Hamming radius {summary['radius']} (an empty ball "
             "scores 0); train s: wall seconds to fit (deep: the whole run, with per-epoch validation)", ""]
    if summary["missing"]:
        lines += [f"Not finished yet: {', '.join(summary['missing'])}.", ""]
    lines.append(format_table([entry_row(e) for e in entries], map_label=map_label))
    deep = [e for e in entries if e["kind"] == "deep"]
    if deep:
        lines += ["", "## Deep runs", ""] + _deep_table(deep)
    lines += _speed_section(summary["speed"])
    lines += ["", "## Methods", ""]
    for name, description in dict((e["method"], e["description"]) for e in entries).items():
        lines.append(f"- **{name}**: {description}")
    lines += ["", "Raw records: `raw/<method>_<bits>.json` and `results.json`; codes: `codes/`; "
              "deep runs: `runs/<method>_<bits>/`.", ""]
    return "\n".join(lines)


def write_plots(out: Path, entries: Sequence[dict], dataset_name: str) -> list[Path]:
    """pr_curves_<bits>.png and precision_at_k_<bits>.png, every method of that code length on one
    figure; with more than one code length also map_vs_bits.png, every method on one figure."""
    from dnnh.metrics import plot_map_vs_bits, plot_pr_curves, plot_precision_at_k

    reports = {(e["method"], int(e["bits"])): entry_report(e) for e in entries}
    lengths = sorted({bits for _, bits in reports})
    paths = []
    if len(lengths) > 1:
        series: dict[str, dict[int, float]] = {}
        for (method, bits), report in reports.items():
            series.setdefault(method, {})[bits] = report.map
        paths.append(plot_map_vs_bits(series, out / "map_vs_bits.png",
                                      title=f"{dataset_name}: MAP against code length"))
    for bits in lengths:
        of_length = {method: report for (method, b), report in reports.items() if b == bits}
        paths.append(plot_pr_curves(of_length, out / f"pr_curves_{bits}.png",
                                    title=f"{dataset_name}, {bits} bits: precision-recall over Hamming radius"))
        paths.append(plot_precision_at_k(of_length, out / f"precision_at_k_{bits}.png",
                                         title=f"{dataset_name}, {bits} bits: precision at top k"))
    return paths
