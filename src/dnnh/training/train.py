"""The training loop in four named steps: :func:`open_or_resume` (the run directory),
:func:`one_epoch` (batches -> codes -> loss -> step), :func:`validate_and_keep_best` and
:func:`finish`. What changes while training (weights, objective, optimizer, schedule, the random
generators, history, the best epoch) is one :class:`TrainingState`, whose :meth:`~TrainingState.save`
and :meth:`~TrainingState.restore` walk one list of checkpoint entries, so ``resume=True``
continues exactly where the last finished epoch left off and the finished run equals an
uninterrupted one.

The run directory's files are :class:`dnnh.runs.Run`'s business, validation encodes through
:class:`dnnh.encoder.Encoder`, and the objective comes from
:func:`dnnh.training.objectives.make_objective`:
this module only decides what happens in which order.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from dnnh import devices
from dnnh.data.dataset import ArrayDataset, FileDataset
from dnnh.data.augment import random_crop
from dnnh.data.pipeline import BatchSource, Preprocessing, random_erase, shift_augment, to_device
from dnnh.data.progress import Progress
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.locks import lock_folder
from dnnh.training.preflight import check_before_writing, check_epoch_finite
from dnnh.losses import Objective
from dnnh.metrics import mean_average_precision
from dnnh.miners import ClassBalancedBatches, RandomTripletBatches
from dnnh.nn import DNNH, PiecewiseThreshold
from dnnh.runs import Run
from dnnh.config import TrainConfig
from dnnh.training.distributed import Distributed
from dnnh.training.finetune import load_pretrained, make_preprocessing, parameter_groups, set_train_modes
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


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter], steps_per_epoch: int,
                    device: torch.device = torch.device("cpu")):
    """The optimizer and its learning-rate schedule.

    On CUDA the optimizer is torch's fused kernel: one launch for every parameter, and fp16's loss
    scaler hands it the overflow flag on the device instead of reading it on the host every step
    (``GradScaler.step`` otherwise calls ``.item()``). The CPU keeps the default (foreach) kernels.
    """
    fused = {"fused": True} if device.type == "cuda" else {}
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                              **fused)
    else:
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
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


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples) copied to the CPU; CPU tensors as they are."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


#: Seconds between two checkpoints on a GPU (and after the last epoch): see :func:`end_epoch`.
GPU_CHECKPOINT_EVERY_S = 60.0

#: Checkpoint entries only some devices write (see :meth:`TrainingState._device_entries`).
OPTIONAL_ENTRIES = ("cuda_rng", "grad_scaler")


@dataclass
class TrainingState:
    """Everything a checkpoint holds: what one epoch changes and the next one needs.

    :meth:`entries` names each checkpoint key once with how to read and set it; :meth:`save`
    and :meth:`restore` both walk it, so a key cannot be saved and forgotten on the way back.
    ``next_epoch`` is stored as the last finished 0-based epoch (key ``epoch``), as before.
    """

    model: DNNH
    objective: Objective
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator  # batch order
    aug_gen: torch.Generator  # augmentation
    history: list[dict] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: int = -1
    next_epoch: int = 0
    device: torch.device = torch.device("cpu")
    scaler: torch.amp.GradScaler | None = None  # loss scaling (fp16 on CUDA); None or disabled elsewhere
    saved_at: float = 0.0  # time.perf_counter() of the last checkpoint (or the start): not itself saved

    def entries(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
        """{checkpoint key: (read it, set it)}, in the order they are restored."""
        def attribute(name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
            return (lambda: getattr(self, name)), (lambda value: setattr(self, name, value))

        def set_numpy_rng(value: Any) -> None:
            self.rng.bit_generator.state = value

        return {
            "objective": (self.objective.state_dict, self.objective.load_state_dict),
            "optimizer": (self.optimizer.state_dict, self.optimizer.load_state_dict),
            "schedule": (self.schedule.state_dict, self.schedule.load_state_dict),
            "numpy_rng": (lambda: self.rng.bit_generator.state, set_numpy_rng),
            "aug_rng": (self.aug_gen.get_state, self._set_aug_state),
            "torch_rng": (torch.get_rng_state, torch.set_rng_state),
            "history": attribute("history"),
            "best_val": attribute("best_val"),
            "best_epoch": attribute("best_epoch"),
            "epoch": ((lambda: self.next_epoch - 1), (lambda value: setattr(self, "next_epoch", value + 1))),
            **self._device_entries(),
        }

    def _device_entries(self) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
        """The entries only some devices have (:data:`OPTIONAL_ENTRIES`): CUDA's generator (dropout
        masks there) and fp16's loss scale. A checkpoint without them resumes with them fresh."""
        entries: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        if self.device.type == "cuda":
            entries["cuda_rng"] = (lambda: torch.cuda.get_rng_state(self.device),
                                   lambda value: torch.cuda.set_rng_state(value, self.device))
        if self.scaler is not None and self.scaler.is_enabled():
            entries["grad_scaler"] = (self.scaler.state_dict, self.scaler.load_state_dict)
        return entries

    def _set_aug_state(self, value: torch.Tensor) -> None:
        """The augmentation stream where the checkpoint left it; a state of another device's generator
        (a CPU run resumed on a GPU: Mersenne Twister against Philox) cannot be set, so the stream
        restarts from a seed drawn from that state: still one stream for the rest of the run,
        the same on every resume, but not the numbers the other device would have drawn."""
        try:
            self.aug_gen.set_state(value)
        except RuntimeError:
            seed = int.from_bytes(hashlib.sha256(value.cpu().numpy().tobytes()).digest()[:8], "little")
            self.aug_gen.manual_seed(seed)

    def save(self, run: Run) -> None:
        """The weights and every entry, in one atomic file (:meth:`Run.save_checkpoint`), as CPU tensors:
        the optimizer's moments of a GPU run too, so the file opens on any machine."""
        run.save_checkpoint(self.model, {key: on_cpu(read()) for key, (read, _) in self.entries().items()})

    def restore(self, run: Run) -> None:
        """The inverse of :meth:`save`: weights into the model, every entry back in place."""
        saved = run.load_checkpoint(self.model)
        missing = [key for key in self.entries() if key not in saved and key not in OPTIONAL_ENTRIES]
        if missing:
            raise ValueError(f"{run.path} holds a checkpoint without {missing}: it is not one this dnnh wrote")
        for key, (_, set_value) in self.entries().items():
            if key in saved:
                set_value(saved[key])


@dataclass
class Setup:
    """What stays fixed for a whole run: the run directory, the data and how it is batched."""

    config: TrainConfig
    run: Run
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    batcher: ClassBalancedBatches | RandomTripletBatches
    source: BatchSource
    encoder: Encoder
    parameters: list[torch.nn.Parameter]
    ddp: Distributed
    eval_source: BatchSource | None = None  # centre-cropped images when training crops at random (else source)
    backbone_note: str = ""  # where a pretrained backbone started: its weights file, or random initialisation
    forward: Callable[..., torch.Tensor] | None = None  # --compile: the compiled forward (else the model's own)
    checkpoint_every_s: float = 0.0  # see train(): 0 on the CPU (every epoch), GPU_CHECKPOINT_EVERY_S on a GPU

    @property
    def device(self) -> torch.device:
        """Where the model, batches and loss live: this process's device (cuda:LOCAL_RANK under torchrun)."""
        return self.ddp.device


def train(config: TrainConfig, dataset: ArrayDataset | FileDataset, split: Split, run_dir: str | Path,
          resume: bool = False, progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
          source: DataSource | None = None, log: Callable[[str], None] | None = None,
          device: str | torch.device | None = None, checkpoint_every_s: float | None = None) -> TrainResult:
    """Train ``config`` on ``dataset``'s ``split`` into ``run_dir``.

    ``source``: where the data came from (recorded so the run can reload it; default: the
    dataset's name when that reloads it). ``progress``: progress bars. ``log``: where the one
    line per epoch goes (default: beside the bars when ``progress``, else nowhere). The run
    directory is locked for the whole run: a second writer fails at once, naming this one.

    ``device``: where to train (``auto``, ``cpu``, ``cuda``, ``cuda:N``), short for
    ``config.replace(device=...)``; precision stays as the config resolved it, so for the
    device's own ``auto`` precision build the config with ``device=`` instead. The model, the
    batches and the loss live there; checkpoints hold CPU tensors, so the run resumes, evaluates
    and encodes on any device (:mod:`dnnh.devices`).

    ``checkpoint_every_s``: the checkpoint is written after an epoch when this long has passed since
    the last one, and after the last epoch (None: every epoch on the CPU, at most every
    :data:`GPU_CHECKPOINT_EVERY_S` on a GPU, whose epochs can take less time than writing one). A
    resumed run continues from the last checkpoint written and still equals an uninterrupted run.
    """
    from dnnh.training import head_training  # the head's loop on cached features, handed this loop's parts below

    check_before_writing(config)  # what the config cannot train is refused before the run folder exists
    if head_training.uses_feature_cache(config):  # a frozen backbone with a file: the head trains on cached features
        return head_training.train_head_on_features(config, dataset, split, run_dir, resume, progress, on_epoch_end,
                                                    source, log, device, loop=sys.modules[__name__])
    run_dir = Path(run_dir)
    if device is not None:
        config = config.replace(device=str(device))
    place = devices.resolve_device(config.device)  # a GPU that is not here: one line, before any file is written
    devices.check_precision(place, config.precision)
    ddp = Distributed.from_environment(place)  # one process, or one rank of torchrun's group (cuda:LOCAL_RANK)
    if log is None and progress:
        log = tqdm.write
    if not ddp.is_main:
        progress, log = False, None
    lock = lock_folder(run_dir, "run directory")  # refuses a file's path, on every rank
    try:
        with lock if ddp.is_main else nullcontext(), devices.deterministic_algorithms(config.deterministic):
            run = open_or_resume(config, dataset, split, run_dir, resume, source, ddp)
            if resume and log is not None and run.config.precision != config.precision:
                log(f"resuming in {config.precision} on {devices.device_name(place)}: the run trained in "
                    f"{run.config.precision} so far (on {run.config.device})")
            setup, state = start(config, run, dataset, ddp, resume, log)
            if checkpoint_every_s is not None:
                setup.checkpoint_every_s = checkpoint_every_s
            if log is not None and setup.backbone_note:
                log(setup.backbone_note)
            started = state.saved_at = time.perf_counter()
            for epoch in range(state.next_epoch, config.epochs):
                record = one_epoch(setup, state, epoch, progress, log)
                check_epoch_finite(record, state.model, state.next_epoch, run_dir)  # NaN: stop, last checkpoint kept
                validated = validate_and_keep_best(setup, state, epoch, record)
                end_epoch(setup, state, record)
                ddp.barrier()  # the others wait for rank 0's validation and files here, not in the next collective
                if log is not None:
                    log(epoch_line(epoch, config.epochs, record, validated))
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, record)
            return finish(setup, state, time.perf_counter() - started)
    finally:
        ddp.close()  # the process group this run started ends with it


def open_or_resume(config: TrainConfig, dataset: ArrayDataset | FileDataset, split: Split, run_dir: Path,
                   resume: bool, source: DataSource | None, ddp: Distributed) -> Run:
    """The run directory: a fresh run refuses to overwrite one, a resumed run must match it; rank 0 writes."""
    split.check_fits(len(dataset))
    if not resume:  # unreadable images anywhere in the split are found now, not after hours of training
        bad = dataset.verify(np.concatenate([split.query, split.database]))
        if bad:
            raise ValueError(f"{len(bad)} image file(s) cannot be read, e.g. {', '.join(map(str, bad[:3]))}; "
                             "fix or remove them, or load the data with --skip-corrupt to drop them")
    if config.threads:
        torch.set_num_threads(config.threads)
    if resume:
        run = Run.open(run_dir)
        run.check_continues(config, split)
    elif ddp.is_main:
        prep = make_preprocessing(config, dataset, split.train)
        run = Run.create(run_dir, config, dataset, split, prep, source=source)
    ddp.barrier()
    if not resume and not ddp.is_main:
        run = Run.open(run_dir)
    return run


def start(config: TrainConfig, run: Run, dataset: ArrayDataset | FileDataset, ddp: Distributed,
          resume: bool, log: Callable[[str], None] | None = None) -> tuple[Setup, TrainingState]:
    """Seed, build the model, objective and optimizer (in this order: it fixes the random draws),
    and restore the checkpoint when resuming one. The model is built on the CPU and moved to the
    device, so its initial weights are the same on every device."""
    labels, train_idx, val_idx = dataset.labels, run.split.train, run.split.val
    device = ddp.device
    devices.speed_switches(device, config.deterministic)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    aug_gen = devices.generator(device, config.seed + 1)  # on the CPU: the generator of before issue 22
    model = ddp.prepare(run.new_model()).to(device, memory_format=torch.channels_last)
    note = load_pretrained(model, config) if not (resume and run.has_checkpoint) else ""
    batcher = build_batches(config, labels[train_idx])
    objective = make_objective(config.loss, config.objective_spec(), labels, train_idx,
                               sync_free=device.type != "cpu").to(device)  # on a GPU: no host wait (issue 34.8)
    groups, parameters = parameter_groups(model, objective, config)
    optimizer, schedule = build_optimizer(config, groups, len(batcher), device)
    cached = np.union1d(train_idx, val_idx)
    crops = config.augment == "crop-flip" and run.prep.resize is not None  # training cuts random crops itself
    eval_source = BatchSource(dataset, run.prep, cache_indices=cached, num_workers=config.num_workers, device=device) if crops else None
    batches = BatchSource(dataset, run.prep.uncropped() if crops else run.prep, cache_indices=cached,
                          num_workers=config.num_workers, device=device)
    setup = Setup(config, run, labels, train_idx, val_idx, batcher, batches, Encoder(model, run.prep), parameters,
                  ddp, eval_source=eval_source, backbone_note=note,
                  checkpoint_every_s=GPU_CHECKPOINT_EVERY_S if device.type == "cuda" else 0.0)
    state = TrainingState(model, objective, optimizer, schedule, rng, aug_gen, device=device,
                          scaler=devices.grad_scaler(device, config.precision))
    if config.compile:  # the loop's forward under torch.compile, tried at the first step (devices.CompiledForward)
        setup.forward = devices.CompiledForward(model.logits if objective.input == "logits" else model, log)
    if resume and run.has_checkpoint:
        state.restore(run)
    return setup, state


def one_epoch(setup: Setup, state: TrainingState, epoch: int, progress: bool,
              log: Callable[[str], None] | None = None) -> dict:
    """Every batch of ``epoch`` (0-based) once: augment, forward, loss, step. Returns the epoch's record.

    On a GPU no step makes the host wait for the device: the epoch's dataset indices and labels go
    up in one non-blocking copy before the first step, the loss and the triplet count are summed
    on the device and read once at the end, and the loss is read for the progress display only
    when it is drawn (:class:`dnnh.data.progress.Progress`; tests/training/test_host_syncs.py).
    """
    config, ddp, model, objective, device = setup.config, setup.ddp, state.model, state.objective, setup.device
    model.train()
    set_train_modes(model, config)
    if ddp.rank > 0:  # dropout masks: rank 0 continues the checkpointed stream, the others their own
        torch.manual_seed(config.seed + 1_000_003 * ddp.rank + epoch)
    set_threshold_eps(model, threshold_eps(config, epoch))
    batches = [setup.train_idx[b] for b in setup.batcher.epoch(state.rng)]  # global batches; this rank encodes a share
    shares = [ddp.share(len(b)) for b in batches]
    every = np.concatenate(batches) if batches else np.empty(0, dtype=np.int64)
    indices, labels = to_device(every, device), to_device(setup.labels[every], device)  # one copy each an epoch
    ends = np.cumsum([0] + [len(b) for b in batches]).tolist()
    shown = Progress(len(every), f"epoch {epoch + 1}/{config.epochs}", shown=progress, log=log)
    t0, loss_sum, triplet_sum = time.perf_counter(), torch.zeros((), dtype=torch.float64, device=device), 0
    local = [b[start:stop] for b, (start, stop) in zip(batches, shares)]
    forward = setup.forward or (model.logits if objective.input == "logits" else model)
    for i, ((start, stop), images) in enumerate(zip(shares, setup.source.batches(local))):
        idx, n = indices[ends[i]:ends[i + 1]], ends[i + 1] - ends[i]
        images = augment(config, images, state.aug_gen, share=(start, stop, n), crop=setup.run.prep.input_size)
        with devices.autocast(device, config.precision):
            outputs = ddp.gather(forward(images))  # the head runs in fp32 inside (see HashNetwork)
            query_outputs = ddp.gather(forward(images, role="query")) if config.separate_query_network else None
        loss, n_triplets = objective(outputs, labels[ends[i]:ends[i + 1]], query_outputs, idx)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()  # a disabled scaler (all but fp16 on CUDA) passes the loss through
        ddp.average_gradients(setup.parameters)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.schedule.step()
        loss_sum += loss.detach().double() * n  # summed on the device: no wait for the GPU each step
        triplet_sum += n_triplets  # an int, or a count the objective left on the device
        shown.update(n, note=lambda loss=loss: f"loss {loss.item():.4f}")  # read only when drawn
    shown.close()
    devices.synchronize(device)
    seconds, seen = time.perf_counter() - t0, len(every)
    return {"epoch": epoch + 1, "loss": float(loss_sum) / max(seen, 1), "images_per_s": seen / seconds,
            "triplets_per_s": float(triplet_sum) / seconds, "seconds": seconds, "lr": state.schedule.get_last_lr()[0]}


def augment(config: TrainConfig, images: torch.Tensor, generator: torch.Generator,
            share: tuple[int, int, int], crop: int | None = None) -> torch.Tensor:
    """The config's training augmentation of one batch (this rank's ``share`` of the global batch).

    ``crop``: the side of crop-flip's random crop (the network's input size).
    """
    if config.augment == "crop-flip":
        images = random_crop(images, generator, crop or min(images.shape[2:]), flip=True, share=share)
    elif config.augment != "none":
        images = shift_augment(images, generator, config.max_shift, flip=config.augment == "shift-flip", share=share)
    if config.erase > 0:
        images = random_erase(images, generator, config.erase, share=share)
    return images


def validate_and_keep_best(setup: Setup, state: TrainingState, epoch: int, record: dict) -> bool:
    """Score ``epoch`` on the validation split when due, keep its weights when best; True if it was scored.

    Validation, the best model and the files happen once, on rank 0. Without a validation set the
    last epoch is the one kept.
    """
    config, ddp = setup.config, setup.ddp
    n_val = len(setup.val_idx)
    validate = n_val > 0 and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs)
    if validate and ddp.is_main:
        record["val_map"] = validation_map(setup.encoder, setup.eval_source or setup.source, setup.val_idx,
                                           setup.train_idx, setup.labels)
    if (validate and record.get("val_map", -1.0) > state.best_val) or n_val == 0:
        state.best_val, state.best_epoch = record.get("val_map", float("nan")), epoch + 1
        if ddp.is_main:
            setup.run.save_best(state.model, epoch + 1)
    return validate


def end_epoch(setup: Setup, state: TrainingState, record: dict) -> bool:
    """Add ``record`` to the history and checkpoint the epoch when due (rank 0 writes the files); True if saved.

    Due: after the last epoch, and when :attr:`Setup.checkpoint_every_s` have passed since the last
    checkpoint (every epoch at 0). A checkpoint is a few hundred MB written and synced, more than
    an epoch of a small network takes on a GPU (issue 34.8).
    """
    state.history.append(record)
    state.next_epoch = record["epoch"]
    now = time.perf_counter()
    due = record["epoch"] == setup.config.epochs or now - state.saved_at >= setup.checkpoint_every_s
    if setup.ddp.is_main:
        if due:
            state.save(setup.run)
        setup.run.write_history(state.history, state.best_epoch, state.best_val)
    if due:
        state.saved_at = now
    return due


def finish(setup: Setup, state: TrainingState, seconds: float) -> TrainResult:
    """The best epoch's weights back in the model, the final threshold, eval mode."""
    setup.ddp.barrier()  # rank 0 has written the best weights
    return best_result(setup.run, setup.config, state, seconds)


def best_result(run: Run, config: TrainConfig, state: TrainingState, seconds: float) -> TrainResult:
    """The best epoch's weights back in ``state.model``, the final threshold, eval mode (also the head loop's end)."""
    model = state.model
    run.load_best_into(model)
    set_threshold_eps(model, config.eps)
    model.eval()
    return TrainResult(model=model, prep=run.prep, history=state.history, best_epoch=state.best_epoch,
                       best_val_map=state.best_val, seconds=seconds, run=run)


def epoch_line(epoch: int, epochs: int, record: dict, validated: bool, unit: str = "img/s") -> str:
    """The one line an epoch logs (also the head loop's, whose rate is in features/s)."""
    val = f", val MAP {record['val_map']:.4f}" if validated else ""
    return f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f}, {record['images_per_s']:.0f} {unit}{val}"
