"""The training loop, top to bottom: set up, then for each epoch batches -> codes -> loss -> step,
then validate and checkpoint. ``resume=True`` restores the last checkpoint (weights, optimizer,
schedule, both random generators, history) so the finished run equals an uninterrupted one.

The run directory's files are :class:`dnnh.runs.Run`'s business, validation encodes through
:class:`dnnh.encoder.Encoder`, and the objective comes from
:func:`dnnh.training.objectives.make_objective`:
this module only decides what happens in which order.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from dnnh.data.dataset import ArrayDataset, FileDataset
from dnnh.data.pipeline import BatchSource, Preprocessing, random_erase, shift_augment
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.locks import lock_folder
from dnnh.metrics import mean_average_precision
from dnnh.miners import ClassBalancedBatches, RandomTripletBatches
from dnnh.nn import DNNH, PRESETS, PiecewiseThreshold
from dnnh.runs import Run
from dnnh.config import TrainConfig
from dnnh.training.distributed import Distributed
from dnnh.training.objectives import make_objective


@dataclass
class TrainResult:
    model: DNNH
    prep: Preprocessing
    history: list[dict]
    best_epoch: int
    best_val_map: float
    seconds: float
    run: Run


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter], steps_per_epoch: int):
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "step":  # the paper's "lr x0.1 late in training": the last quarter
            return 0.1 if step >= 0.75 * total else 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def build_batches(config: TrainConfig, train_labels: np.ndarray) -> ClassBalancedBatches | RandomTripletBatches:
    """Batches of positions into the training set: class-balanced, or three-stream [anchors; pos; neg]."""
    if config.triplets == "random":
        return RandomTripletBatches(train_labels, config.batch_size)
    return ClassBalancedBatches(train_labels, config.batch_size, config.per_class)


def threshold_eps(config: TrainConfig, epoch: int) -> float | None:
    """The threshold's half band in ``epoch`` (0-based): from 0.5 (no thresholding) down to config.eps.

    With the final band from the start, the freshly initialised network's outputs mostly fall
    outside it, where g has zero gradient, and training stalls (docs/RESULTS.md); opening the
    band first lets bits find their side before they are pinned to 0/1.
    """
    if config.eps is None:
        return None
    anneal_epochs = config.eps_anneal * config.epochs
    if anneal_epochs <= 0:
        return config.eps
    return config.eps + (0.5 - config.eps) * max(0.0, 1.0 - epoch / anneal_epochs)


def set_threshold_eps(model: torch.nn.Module, eps: float | None) -> None:
    if eps is not None:
        for module in model.modules():
            if isinstance(module, PiecewiseThreshold):
                module.eps = eps


def validation_map(encoder: Encoder, source: BatchSource, val_idx: np.ndarray, db_idx: np.ndarray,
                   labels: np.ndarray) -> float:
    """MAP of validation images against the training images: model selection never sees queries."""
    q = encoder.encode_items(source, val_idx, role="query")
    d = encoder.encode_items(source, db_idx, role="database")
    return float(mean_average_precision(q, d, labels[val_idx], labels[db_idx]))


def train(config: TrainConfig, dataset: ArrayDataset | FileDataset, split: Split, run_dir: str | Path,
          resume: bool = False, progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
          source: DataSource | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``config`` on ``dataset``'s ``split`` into ``run_dir``.

    ``source``: where the data came from (recorded so the run can reload it; default: the
    dataset's name when that reloads it). ``progress``: progress bars. ``log``: where the one
    line per epoch goes (default: beside the bars when ``progress``, else nowhere). The run
    directory is locked for the whole run: a second writer fails at once, naming this one.
    """
    run_dir = Path(run_dir)
    ddp = Distributed.from_environment()  # one process, or one rank of torchrun's group
    if log is None and progress:
        log = tqdm.write
    if not ddp.is_main:
        progress, log = False, None
    lock = lock_folder(run_dir, "run directory")  # refuses a file's path, on every rank
    with lock if ddp.is_main else nullcontext():
        return _train(config, dataset, split, run_dir, resume, progress, on_epoch_end, source, log, ddp)


def _train(config: TrainConfig, dataset: ArrayDataset | FileDataset, split: Split, run_dir: Path, resume: bool,
           progress: bool, on_epoch_end: Callable[[int, dict], None] | None, source: DataSource | None,
           log: Callable[[str], None] | None, ddp: Distributed) -> TrainResult:
    split.check_fits(len(dataset))
    if not resume:  # unreadable images anywhere in the split are found now, not after hours of training
        bad = dataset.verify(np.concatenate([split.query, split.database]))
        if bad:
            raise ValueError(f"{len(bad)} image file(s) cannot be read, e.g. {', '.join(map(str, bad[:3]))}; "
                             "fix or remove them, or load the data with --skip-corrupt to drop them")
    if config.threads:
        torch.set_num_threads(config.threads)
    labels = dataset.labels
    train_idx, val_idx = split.train, split.val

    # Run directory: a fresh run refuses to overwrite one; a resumed run must match it. Rank 0 writes it.
    if resume:
        run = Run.open(run_dir)
        run.check_continues(config, split)
    elif ddp.is_main:
        input_size = config.input_size or PRESETS[config.backbone].input_size
        prep = Preprocessing.fit(dataset, train_idx, input_size, seed=config.seed)
        run = Run.create(run_dir, config, dataset, split, prep, source=source)
    ddp.barrier()
    if not resume and not ddp.is_main:
        run = Run.open(run_dir)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    aug_gen = torch.Generator().manual_seed(config.seed + 1)
    model = run.new_model().to(memory_format=torch.channels_last)
    batcher = build_batches(config, labels[train_idx])
    objective = make_objective(config.loss, config.objective_spec(), labels, train_idx)
    parameters = [*model.parameters(), *objective.parameters()]
    optimizer, schedule = build_optimizer(config, parameters, len(batcher))
    source_batches = BatchSource(dataset, run.prep, cache_indices=np.union1d(train_idx, val_idx),
                                 num_workers=config.num_workers)
    encoder = Encoder(model, run.prep)
    history: list[dict] = []
    best_val, best_epoch, start_epoch = -1.0, -1, 0

    if resume and run.has_checkpoint:
        state = run.load_checkpoint(model)
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["numpy_rng"]
        aug_gen.set_state(state["aug_rng"])
        torch.set_rng_state(state["torch_rng"])
        history, best_val, best_epoch = state["history"], state["best_val"], state["best_epoch"]
        start_epoch = state["epoch"] + 1

    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        model.train()
        if ddp.rank > 0:  # dropout masks: rank 0 continues the checkpointed stream, the others their own
            torch.manual_seed(config.seed + 1_000_003 * ddp.rank + epoch)
        set_threshold_eps(model, threshold_eps(config, epoch))
        batches = [train_idx[b] for b in batcher.epoch(rng)]  # the global batches; this rank encodes a share
        shares = [ddp.share(len(b)) for b in batches]
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
                   leave=False, unit="batch")
        t0, seen, loss_sum, triplet_sum = time.perf_counter(), 0, 0.0, 0
        local = [b[start:stop] for b, (start, stop) in zip(batches, shares)]
        for idx, (start, stop), images in zip(batches, shares, source_batches.batches(local)):
            share = (start, stop, len(idx))
            if config.augment != "none":
                images = shift_augment(images, aug_gen, config.max_shift, flip=config.augment == "shift-flip",
                                       share=share)
            if config.erase > 0:
                images = random_erase(images, aug_gen, config.erase, share=share)
            batch_labels = torch.from_numpy(labels[idx])
            forward = model.logits if objective.input == "logits" else model
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                outputs = ddp.gather(forward(images))  # the head runs in fp32 inside (see HashNetwork)
                query_outputs = ddp.gather(forward(images, role="query")) if config.separate_query_network else None
            loss, n_triplets = objective(outputs, batch_labels, query_outputs, torch.from_numpy(idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            ddp.average_gradients(parameters)
            optimizer.step()
            schedule.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            triplet_sum += n_triplets
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "images_per_s": seen / seconds,
                  "triplets_per_s": triplet_sum / seconds, "seconds": seconds, "lr": schedule.get_last_lr()[0]}
        validate = len(val_idx) > 0 and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs)
        if validate and ddp.is_main:  # validation, the best model and the files: once, on rank 0
            record["val_map"] = validation_map(encoder, source_batches, val_idx, train_idx, labels)
        # Without a validation set, the last epoch is the one kept.
        if (validate and record.get("val_map", -1.0) > best_val) or len(val_idx) == 0:
            best_val, best_epoch = record.get("val_map", float("nan")), epoch + 1
            if ddp.is_main:
                run.save_best(model, epoch + 1)
        history.append(record)
        if ddp.is_main:
            run.save_checkpoint(model, {
                "epoch": epoch, "objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "numpy_rng": rng.bit_generator.state,
                "aug_rng": aug_gen.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
                "best_val": best_val, "best_epoch": best_epoch})
            run.write_history(history, best_epoch, best_val)
        if log is not None:
            val = f", val MAP {record['val_map']:.4f}" if validate else ""
            log(f"epoch {epoch + 1}/{config.epochs}: loss {record['loss']:.4f}, "
                f"{record['images_per_s']:.0f} img/s{val}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    ddp.barrier()  # rank 0 has written the best weights
    run.load_best_into(model)
    set_threshold_eps(model, config.eps)
    model.eval()
    return TrainResult(model=model, prep=run.prep, history=history, best_epoch=best_epoch, best_val_map=best_val,
                       seconds=time.perf_counter() - started, run=run)
