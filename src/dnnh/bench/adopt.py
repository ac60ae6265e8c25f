"""``--adopt RUN``: a run trained outside the bench (``dnnh train``, a sweep) brought into a bench folder.

The run is adopted only if it is what the bench would have trained itself: the same split (the
four index arrays of its split.json equal the folder's), the same data (fingerprint), and a
config whose decisive fields (:meth:`~dnnh.config.TrainConfig.decisive`) equal those of
one of the bench's own entries (method, code length, seed; tuned settings included). It is then
copied to ``OUT/runs/<entry>/`` with an ``adopted.json`` saying where it came from, and the
bench treats it as its own run: a finished run is scored, an unfinished one continued. Its
training time is the sum of its epochs' seconds (set-up and validation outside them are not
known). Anything else is refused in one line, naming the closest entry and what differs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Sequence

from dnnh.bench.methods import Method
from dnnh.bench.report import utc_now
from dnnh.bench.runners import ADOPTED, BenchContext
from dnnh.locks import LOCK_NAME, lock_folder
from dnnh.runs import HISTORY, TIMING, Run, read_json
from dnnh.config import config_differences

Candidate = tuple[Method, int, "int | None"]


def adopt_run(source: str | Path, ctx: BenchContext, candidates: Sequence[Candidate],
              log: Callable[[str], None] = print) -> Path:
    """Copy the run at ``source`` into the bench folder as the entry it matches; returns its new folder."""
    source = Path(source)
    what = f"cannot adopt {source}"
    try:
        run = Run.open(source)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{what}: {exc}") from None
    if run.split != ctx.split:
        raise ValueError(f"{what}: its split ({source / 'split.json'}) is not the bench's {ctx.out / 'split.json'}")
    try:
        run.check_data(ctx.dataset)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if run.reformed is not None:
        raise ValueError(f"{what}: it is a {run.config.loss} run trained {run.reformed[1]}")
    have = run.config.decisive()
    deep = [(m, b, s) for m, b, s in candidates if m.kind == "deep" and b == run.config.nbits]
    if not deep:
        lengths = sorted({b for _, b, _ in candidates})
        raise ValueError(f"{what}: it has {run.config.nbits} bits; this bench trains deep entries at {lengths}")
    wanted = {ctx.entry_name(m, b, s): m.train_config(b, ctx.common_for(s)).decisive() for m, b, s in deep}
    matches = [name for name, config in wanted.items() if config == have]
    if not matches:
        def n_differences(name: str) -> int:
            return len(config_differences(have, wanted[name]).split("; "))

        closest = min(wanted, key=n_differences)
        raise ValueError(f"{what}: its config is not what this bench trains; closest entry {closest} "
                         f"({config_differences(have, wanted[closest], asked='bench')})")
    name = matches[0]
    dest = ctx.out / "runs" / name
    marker = dest / ADOPTED
    origin = str(source.resolve())
    if source.resolve().is_relative_to(ctx.out.resolve()):  # a tuning run of this folder: say where, portably
        origin = str(source.resolve().relative_to(ctx.out.resolve()))
    if dest.exists():
        if marker.exists() and json.loads(marker.read_text()).get("from") == origin:
            log(f"{source} was adopted as {name} before")
            return dest
        raise ValueError(f"{what}: {dest} already holds a run; delete it first to replace it with {source}")
    if (ctx.out / "raw" / f"{name}.json").exists():
        raise ValueError(f"{what}: {ctx.out / 'raw' / (name + '.json')} is a finished entry; delete it "
                         f"(and {dest}) first to replace it")
    partial = dest.with_name(f".{name}.adopting")
    if partial.exists():
        shutil.rmtree(partial)
    with lock_folder(source, "run directory"):  # not while another process writes it
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns(LOCK_NAME))
    history = read_json(partial / HISTORY)["history"] if (partial / HISTORY).exists() else []
    seconds = sum(float(h["seconds"]) for h in history)
    (partial / ADOPTED).write_text(json.dumps({"from": origin, "adopted": utc_now(), "epochs": len(history),
                                               "epoch_seconds": seconds}, indent=2))
    if not (partial / TIMING).exists():
        Run.open(partial).write_timing(seconds, len(history))
    partial.rename(dest)
    state = "finished" if len(history) >= run.config.epochs else f"{len(history)} of {run.config.epochs} epochs"
    log(f"adopted {source} as {name} ({state})")
    return dest


__all__ = ["adopt_run"]
