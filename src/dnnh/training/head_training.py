"""The hash head trained alone on a frozen backbone's cached features (``train --freeze-backbone``).

A frozen pretrained backbone in eval mode is a fixed function of the image; without augmentation
(the default for a frozen backbone with a weights file: ``augment`` resolves to ``none``) every
epoch feeds it the same images, so its pooled features are computed once
(:mod:`dnnh.training.feature_cache`) and only what sits above them trains: divide-and-encode's
projection (the backbone's width D to 50q, linear + ReLU) and slices, or the fully connected
head, and the objective's own parameters. An epoch is then matrix products on a few thousand
rows: seconds instead of hours at 224 px on a CPU.

Why a loop of its own, beside :func:`dnnh.training.train.one_epoch`: that loop's body is about
images (the batch source and its device pipeline, augmentation, autocast of the backbone, the
DDP gather, loss scaling), none of which exists here. This one reuses everything else, handed to
it by :func:`dnnh.training.train.train` (``loop``: that module itself, so this one never imports
it back and the package's import graph keeps no cycle, tests/test_layers.py): the run
directory (:func:`~dnnh.training.train.open_or_resume`), the seeding and build order of
:func:`~dnnh.training.train.start` (so the head starts from the weights the image path would
give it), the batches and miners, the objectives, the optimizer and schedule, and
:class:`~dnnh.training.train.TrainingState`'s checkpoint, so a run resumes exactly and the
result is an ordinary run: its model.safetensors is the backbone (the recorded file's weights)
plus the trained head, and ``dnnh encode``, ``eval``, ``search``, ``export`` and ``serve`` take
raw images as for any run. Their codes equal :func:`head_bits`' on the cached features: the
features are computed on the encoder's own inference path, and the head here runs the same
fused layers (tests/training/test_head_training.py). It runs them on 4,096 rows at a time
where the encoder runs 64 images: a row of a matrix product does not depend on the rows beside
it (measured bit-identical), and the larger products encode a 70,000-item database 3 to 6 times
faster.

The head always trains and encodes in fp32 and the features are computed in fp32 (what the
default encoding engine computes), whatever ``precision`` says: the bf16 arithmetic it would
select is the backbone's, which the cache runs once in fp32 so that the codes match ``dnnh encode``.
One process only: the head's steps are too small to share between processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dnnh import devices
from dnnh.codes import CodeSet
from dnnh.config import TrainConfig
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.encoder.names import ROLES
from dnnh.errors import ChangedDataError, InputError
from dnnh.locks import lock_folder
from dnnh.metrics import mean_average_precision
from dnnh.nn import DNNH, build_backbone
from dnnh.nn.dnnh import HashNetwork
from dnnh.nn.fuse import fuse_for_inference
from dnnh.runs import Run
from dnnh.training.distributed import Distributed
from dnnh.training.feature_cache import FeatureKey, FeatureTable, cached_features
from dnnh.training.finetune import load_pretrained, make_preprocessing, parameter_groups, set_train_modes
from dnnh.training.objectives import make_objective
from dnnh.training.preflight import check_epoch_finite

#: Feature rows read from the cache file and encoded at once: bounds memory on a 70,000-item database
#: (4,096 x 50q floats at 64 bits: 52 MB), and large enough that the projection's weights are read once
#: per 4,096 rows instead of once per 64 (5.8x faster than the encoder's 64-image batches at 16 bits).
ENCODE_ROWS = 4096


def uses_feature_cache(config: TrainConfig) -> bool:
    """Whether ``config`` trains from cached features: a frozen pretrained backbone with a weights file,
    no image augmentation (``augment`` none, no random erasing)."""
    return (config.pretrained and config.freeze_backbone and config.backbone_weights is not None
            and config.augment == "none" and config.erase == 0)


class HashHead(nn.Module):
    """What sits above one network's backbone: the projection (divide-and-encode on a pretrained width)
    and the hash head, features (n, D) -> outputs in [0, 1] (or the logits u). It holds the network's
    own modules, so training it trains the model."""

    def __init__(self, net: HashNetwork) -> None:
        super().__init__()
        self.projection, self.head = net.projection, net.head

    def forward(self, features: torch.Tensor, logits: bool = False) -> torch.Tensor:
        x = features if self.projection is None else self.projection(features)
        return self.head.logits(x) if logits else self.head(x)


def _network(model: DNNH, role: str) -> HashNetwork:
    return model.query_net if role == "query" and model.query_net is not None else model.net


def head_outputs(model: DNNH, features: np.ndarray, role: str = "database",
                 device: str | torch.device = "cpu") -> np.ndarray:
    """The model's eval-mode outputs in [0, 1] on cached ``features`` (rows of a table or an array).

    Computed as :class:`dnnh.encoder.backends.TorchBackend` computes the same layers on images: on
    the fused inference copy (a folded code norm included), under inference mode, so the bits equal
    ``dnnh encode``'s on the raw images (see the module docstring for the batch size).
    """
    net = _network(model, role)
    width = int(net.head.in_features if net.projection is None else net.projection[0].in_features)
    fused = fuse_for_inference(HashHead(net), example=torch.zeros(2, width)).to(device)
    out = np.empty((len(features), model.nbits), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(features), ENCODE_ROWS):
            rows = torch.from_numpy(np.array(features[start:start + ENCODE_ROWS], dtype=np.float32))
            out[start:start + len(rows)] = fused(rows.to(device)).float().cpu().numpy()
    return out


def head_bits(model: DNNH, features: np.ndarray, role: str = "database",
              device: str | torch.device = "cpu") -> np.ndarray:
    """0/1 codes (uint8) of cached ``features``: output > 0.5, as every encoder decides a bit."""
    return (head_outputs(model, features, role, device) > 0.5).astype(np.uint8)


def feature_key(run: Run, storage: str = "float32") -> FeatureKey:
    """The cache key of ``run``'s frozen backbone on its data (fp32 arithmetic, see the module docstring)."""
    config = run.config
    return FeatureKey.of(config.backbone, config.backbone_weights["sha256"], run.prep, run.dataset["fingerprint"],
                         precision="fp32", storage=storage)


def split_items(split: Split) -> np.ndarray:
    """Every item the split uses (queries, database, training, validation), sorted."""
    return np.unique(np.concatenate([split.query, split.database, split.train, split.val]).astype(np.int64))


def run_features(run: Run, dataset, backbone: Callable[[], nn.Module] | None = None, *,
                 folder: str | Path | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None, device: str | torch.device = "cpu") -> FeatureTable:
    """The cached features of every item of ``run``'s split, computed first where missing.

    ``backbone`` builds the frozen backbone when something must be computed (default: the run's
    saved model's, which holds the recorded file's weights).
    """
    config = run.config
    if not uses_feature_cache(config):
        raise InputError(f"{run.path} does not train from cached features (it needs a frozen pretrained backbone "
                         "with a weights file and no augmentation)")
    make = backbone or (lambda: run.load_model().net.backbone)
    return cached_features(feature_key(run), dataset, run.prep, split_items(run.split), make,
                           folder if folder is not None else config.feature_cache, device=device,
                           num_workers=config.num_workers, progress=progress, log=log)


def frozen_backbone(config: TrainConfig) -> nn.Module:
    """The config's backbone loaded from its recorded weights file, refused when the file changed since."""
    recorded = config.backbone_weights
    backbone = build_backbone(config.backbone, weights=recorded["path"])
    if backbone.weights_file.sha256 != recorded["sha256"]:
        raise ChangedDataError(f"{recorded['path']} changed since it was recorded (sha256 {recorded['sha256'][:12]}..., "
                               f"now {backbone.weights_file.sha256[:12]}...); pass the file again")
    return backbone


def config_features(config: TrainConfig, dataset, split: Split, *, fingerprint: dict | None = None,
                    progress: bool = False, log: Callable[[str], None] | None = None) -> FeatureTable:
    """The cached features every run of ``config`` on ``dataset``'s ``split`` reads (the same entry as
    :func:`run_features` of such a run: the same key), computed first where missing. The bench calls it
    once before its runs, so the extraction is timed on its own and no run pays for it."""
    if not uses_feature_cache(config):
        raise InputError("the config does not train from cached features (it needs a frozen pretrained backbone "
                         "with a weights file and no augmentation)")
    prep = make_preprocessing(config, dataset, split.train)
    key = FeatureKey.of(config.backbone, config.backbone_weights["sha256"], prep,
                        fingerprint if fingerprint is not None else dataset.fingerprint())
    return cached_features(key, dataset, prep, split_items(split), lambda: frozen_backbone(config),
                           config.feature_cache, device=devices.resolve_device(config.device),
                           num_workers=config.num_workers, progress=progress, log=log)


def split_codes(model: DNNH, table: FeatureTable, dataset, split: Split,
                device: str | torch.device = "cpu") -> tuple[CodeSet, CodeSet]:
    """The split's query and database codes from cached features (what ``Encoder.encode_split`` gives)."""
    out = []
    for role in ROLES:
        idx = getattr(split, role)
        out.append(CodeSet.from_bits(head_bits(model, _Rows(table, idx), role, device), ids=idx,
                                     labels=dataset.labels[idx]))
    return out[0], out[1]


class _Rows:
    """The rows of ``indices`` of a feature table, read a slice at a time (no copy of the whole database)."""

    def __init__(self, table: FeatureTable, indices: np.ndarray) -> None:
        self.table, self.indices = table, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, part: slice) -> np.ndarray:
        return self.table.rows(self.indices[part])


@dataclass
class HeadSetup:
    """What stays fixed while a head trains: the run, labels, the cached features as tensors, the batches."""

    config: TrainConfig
    run: Run
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_features: torch.Tensor  # rows in train_idx order, on the device
    val_features: np.ndarray
    batcher: object
    device: torch.device
    loop: ModuleType  # dnnh.training.train: the parts of its loop this one reuses
    backbone_note: str = ""


def train_head_on_features(config: TrainConfig, dataset, split: Split, run_dir: str | Path, resume: bool = False,
                           progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
                           source: DataSource | None = None, log: Callable[[str], None] | None = None,
                           device: str | torch.device | None = None, *, loop: ModuleType) -> Any:
    """:func:`dnnh.training.train.train` for a config :func:`uses_feature_cache` accepts: same arguments, and the
    same result (a :class:`~dnnh.training.train.TrainResult`). ``loop``: :mod:`dnnh.training.train`, whose
    ``train`` calls this with itself (see the module docstring)."""
    run_dir = Path(run_dir)
    if device is not None:
        config = config.replace(device=str(device))
    place = devices.resolve_device(config.device)
    ddp = Distributed.from_environment(place)
    if ddp.world > 1:
        raise InputError("training the hash head on cached features runs in one process: drop --nproc / torchrun")
    if log is None and progress:
        log = tqdm.write
    with lock_folder(run_dir, "run directory"):
        run = loop.open_or_resume(config, dataset, split, run_dir, resume, source, ddp)
        if resume:
            run.check_data(dataset)  # the cache is keyed by the data the run recorded
        setup, state = _start(config, run, dataset, ddp, resume, progress, log, loop)
        started = time.perf_counter()
        for epoch in range(state.next_epoch, config.epochs):
            record = _epoch(setup, state, epoch, progress)
            check_epoch_finite(record, state.model, state.next_epoch, run_dir)  # NaN: stop, last checkpoint kept
            validated = _validate_and_keep_best(setup, state, epoch, record)
            state.history.append(record)
            state.next_epoch = record["epoch"]
            state.save(run)
            run.write_history(state.history, state.best_epoch, state.best_val)
            if log is not None:
                log(loop.epoch_line(epoch, config.epochs, record, validated, unit="features/s"))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record)
        return loop.best_result(run, config, state, time.perf_counter() - started)


def _start(config: TrainConfig, run: Run, dataset, ddp: Distributed, resume: bool, progress: bool,
           log: Callable[[str], None] | None, loop: ModuleType) -> tuple[HeadSetup, Any]:
    """:func:`dnnh.training.train.start`'s seeds and build order, then the cached features."""
    labels, train_idx, val_idx, device = dataset.labels, run.split.train, run.split.val, ddp.device
    devices.speed_switches(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    aug_gen = devices.generator(device, config.seed + 1)  # unused (no augmentation): kept for the checkpoint's entry
    model = run.new_model().to(device)
    checkpointed = resume and run.has_checkpoint
    note = load_pretrained(model, config) if not checkpointed else ""
    batcher = loop.build_batches(config, labels[train_idx])
    objective = make_objective(config.loss, config.objective_spec(), labels, train_idx).to(device)
    groups, _ = parameter_groups(model, objective, config)
    optimizer, schedule = loop.build_optimizer(config, groups, len(batcher), device)
    fused_steps(optimizer)
    state = loop.TrainingState(model, objective, optimizer, schedule, rng, aug_gen, device=device)
    if checkpointed:
        state.restore(run)
    if log is not None and note:
        log(note)
    table = run_features(run, dataset, lambda: model.net.backbone, folder=config.feature_cache, progress=progress,
                         log=log, device=device)  # the folder asked for now: a resumed run may keep them elsewhere
    if log is not None:
        log(f"training the hash head on cached features ({len(train_idx):,} training, {len(val_idx):,} validation "
            f"items, width {table.width}) from {table.path}")
    setup = HeadSetup(config, run, labels, train_idx, val_idx, torch.from_numpy(table.rows(train_idx)).to(device),
                      table.rows(val_idx), batcher, device, loop, note)
    return setup, state


def fused_steps(optimizer: torch.optim.Optimizer) -> None:
    """The optimizer's fused kernel on the CPU too (on CUDA ``build_optimizer`` chose it already).

    A head is a few large matrices (divide-and-encode's projection: 4.1M weights at 64 bits), which the
    default kernels pass over once per operation of the update: AdamW took 11 ms a step there, fused
    2.5 ms (2 threads, AMD EPYC), a quarter of a head's step. The image loop keeps the default kernels.
    """
    for group in optimizer.param_groups:
        if "fused" in group and not group.get("foreach"):
            group["fused"] = True


def _epoch(setup: HeadSetup, state: Any, epoch: int, progress: bool) -> dict:
    """Every batch of ``epoch`` once: feature rows -> head -> loss -> step. Returns the epoch's record."""
    config, model, objective = setup.config, state.model, state.objective
    model.train()
    set_train_modes(model, config)
    setup.loop.set_threshold_eps(model, setup.loop.threshold_eps(config, epoch))
    logits = objective.input == "logits"
    head = HashHead(model.net)
    query_head = HashHead(model.query_net) if model.query_net is not None else None
    positions = list(setup.batcher.epoch(state.rng))  # positions into the training set: rows of train_features
    bar = tqdm(total=len(positions), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
               leave=False, unit="batch")
    t0, seen, triplet_sum = time.perf_counter(), 0, 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)  # summed where it is: no wait each step
    for pos in positions:
        idx = setup.train_idx[pos]
        x = setup.train_features[torch.from_numpy(pos).to(setup.device)]
        outputs = head(x, logits)
        query_outputs = query_head(x, logits) if query_head is not None else None
        loss, n_triplets = objective(outputs, torch.from_numpy(setup.labels[idx]).to(setup.device), query_outputs,
                                     torch.from_numpy(idx).to(setup.device))
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.schedule.step()
        seen += len(idx)
        loss_sum += loss.detach().double() * len(idx)
        triplet_sum += n_triplets  # an int, or a count the objective left on the device
        bar.update(1)
    bar.close()
    devices.synchronize(setup.device)
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, "loss": float(loss_sum) / max(seen, 1), "images_per_s": seen / seconds,
            "triplets_per_s": float(triplet_sum) / seconds, "seconds": seconds, "lr": state.schedule.get_last_lr()[0]}


def _validate_and_keep_best(setup: HeadSetup, state: Any, epoch: int, record: dict) -> bool:
    """As :func:`dnnh.training.train.validate_and_keep_best`: validation features (query role) ranked
    against the training features (database role); the best epoch's weights kept in the run."""
    config, n_val = setup.config, len(setup.val_idx)
    validate = n_val > 0 and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs)
    if validate:
        model, device = state.model, setup.device
        q = head_bits(model, setup.val_features, "query", device)
        d = head_bits(model, setup.train_features.cpu().numpy(), "database", device)  # (a view on the CPU)
        record["val_map"] = float(mean_average_precision(q, d, setup.labels[setup.val_idx],
                                                         setup.labels[setup.train_idx]))
    if (validate and record.get("val_map", -1.0) > state.best_val) or n_val == 0:
        state.best_val, state.best_epoch = record.get("val_map", float("nan")), epoch + 1
        setup.run.save_best(state.model, epoch + 1)
    return validate


__all__ = ["HashHead", "config_features", "feature_key", "frozen_backbone", "head_bits", "head_outputs", "run_features", "split_codes", "split_items",
           "train_head_on_features", "uses_feature_cache"]
