"""The run directory, and its one owner: every file of a run is written and read here.

A run directory holds::

    config.json         format, training config, model config, preprocessing, the data (name,
                        size, channels, where it came from, its fingerprint)
    split.json          the split it was trained and is scored on (reused by every baseline)
    model.safetensors   the best weights on the validation split carved from the training set
    checkpoint/state.pt the last epoch as ONE file: weights, optimizer, schedule, random
                        generators, history (so a crash between two writes cannot pair the
                        weights of one epoch with the optimizer state of another)
    history.json        one record per epoch, the best epoch and its validation MAP
    codes_query.npz, codes_database.npz, metrics.json, pr_curve.png, precision_at_k.png
                        written by scoring (``dnnh eval``, the end of ``dnnh train``, the bench)
    bench_time.json     training wall time summed over invocations (bench runs)

Runs made by :func:`dnnh.training.train`, by the bench and by the CLI are the same thing and
reopen the same way: ``Run.open(path)``. The model is rebuilt from the config the run carries
(``DNNH.from_config``), never from what the caller remembers. Every write is atomic.
"""

from __future__ import annotations

import io
import json
import pickle
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from dnnh.atomic import atomic_write_bytes, atomic_write_text
from dnnh.codes import CodeSet
from dnnh.codes.provenance import bytes_digest
from dnnh.data.fingerprint import fingerprint_difference
from dnnh.data.pipeline import Preprocessing
from dnnh.data.sources import DataSource
from dnnh.data.splits import Split
from dnnh.metrics import RetrievalReport
from dnnh.nn import DNNH, ModelConfig
from dnnh.config import PLACEMENT_FIELDS, TrainConfig, config_differences, predates_reform
from dnnh.errors import ChangedDataError, DataError

RUN_FORMAT = "dnnh-run/2"
#: Formats this version opens; a /1 run (no model config, data source in data.json) is read as /2.
READABLE_FORMATS = ("dnnh-run/1", RUN_FORMAT)

CONFIG = "config.json"
SPLIT = "split.json"
BEST_WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint/state.pt"
HISTORY = "history.json"
METRICS = "metrics.json"
CODES = {"query": "codes_query.npz", "database": "codes_database.npz"}
TIMING = "bench_time.json"


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(Path(path), json.dumps(payload, indent=2))


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {path.parent} a dnnh run directory?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write_bytes(Path(path), st_save(tensors, metadata=metadata))


def load_weights(module: torch.nn.Module, path: Path) -> str:
    """Load the safetensors file at ``path`` into ``module``; returns the digest of the bytes loaded.

    The file is read once and the digest is of those bytes, so it names exactly the weights now
    in ``module``, even if the file is replaced a moment later (a ``train`` saving a new best)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"cannot read weights {path}: {exc.strerror or exc}") from exc
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"cannot read weights {path}: {exc}") from exc
    check_finite(tensors, path)
    _load_state_dict(module, tensors, path)
    return bytes_digest(data)


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity: such a model scores (MAP about chance) without a word."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"weights {path}: {name} holds NaN or infinite values; the file is damaged (or "
                             "training diverged): restore it or train the run again")


def _load_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``tensors`` into ``module``, or say in one line why they do not fit it."""
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    mismatched = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"weights {path} do not fit the model its config describes (was config.json edited?): "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {mismatched[:3]}")
    module.load_state_dict(tensors)


#: What a run's config.json may ask for, checked before anything is allocated: a tampered
#: ``nbits`` or ``input_size`` would otherwise reach torch's allocator ("can't allocate memory").
MAX_NBITS = 4096
INPUT_SIZE_RANGE = (4, 2048)


def check_preprocessing(saved: Any, where: Path) -> dict:
    """The ``preprocessing`` of a config.json, refused in one line (:class:`DataError` naming the file and the
    field) unless its mean and std are lists of finite numbers, one per channel, every std above 0: a string
    mean used to be an internal error in eval, and a std of 0 gave constant codes that scored at chance."""
    if not isinstance(saved, dict):
        raise DataError(f"{where}: 'preprocessing' must be an object, got {type(saved).__name__}; was it edited?")
    channels = saved.get("channels")
    for name in ("mean", "std"):
        values = saved.get(name)
        if (not isinstance(values, list) or (isinstance(channels, int) and len(values) != channels)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            raise DataError(f"{where}: preprocessing '{name}' must be a list of {channels} finite numbers (one per "
                            f"channel), got {values!r}; was it edited?")
    if not all(v > 0 for v in saved["std"]):
        raise DataError(f"{where}: preprocessing 'std' must be above 0 in every channel, got {saved['std']!r} (a "
                        "std of 0 divides every image into the same codes); was it edited?")
    return saved


def check_bounds(model_config: ModelConfig, prep: Preprocessing, where: Path) -> None:
    """Refuse a code length, input size or channel count no run of dnnh writes (one line)."""
    nbits, size, channels = model_config.nbits, prep.input_size, prep.channels
    low, high = INPUT_SIZE_RANGE
    if not 1 <= nbits <= MAX_NBITS:
        raise ValueError(f"{where}: nbits {nbits} is outside 1..{MAX_NBITS}; was it edited?")
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
        raise ValueError(f"{where}: input_size {size!r} is outside {low}..{high}; was it edited?")
    if channels not in (1, 3) or getattr(model_config, "in_channels", channels) != channels:
        raise ValueError(f"{where}: {channels!r} channels (model: {getattr(model_config, 'in_channels', '?')}); "
                         "a run has 1 or 3, the same in both; was it edited?")


@dataclass
class Run:
    """A run directory opened for reading and writing; see the module docstring for its files."""

    path: Path
    config: TrainConfig
    model_config: ModelConfig
    prep: Preprocessing
    split: Split
    dataset: dict[str, Any]  # name, size, multilabel, channels, fingerprint
    source: DataSource | None
    reformed: tuple[str, str] | None = None  # (field, when): trained under a loss's formula changed since
    #: The digest of each weights file :meth:`load_model` read, in order (see :meth:`weights_loaded_since`).
    loaded_weights: list[str] = field(default_factory=list, repr=False, compare=False)

    # --- creating and opening --------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, config: TrainConfig, dataset: Any, split: Split, prep: Preprocessing,
               source: DataSource | None = None) -> "Run":
        """A new run directory (config.json and split.json written); refuses to replace a run."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"run directory {path} is a file; choose a folder")
        if (path / CHECKPOINT).exists() or (path / BEST_WEIGHTS).exists():
            raise ValueError(f"{path} already holds a training run; use --resume to continue it "
                             "or choose another run directory")
        source = source if source is not None else DataSource.of(dataset)
        run = cls(path=path, config=config, model_config=config.model_config(prep.channels), prep=prep, split=split,
                  dataset={"name": getattr(dataset, "name", "?"), "size": len(dataset),
                           "multilabel": bool(dataset.multilabel), "channels": prep.channels,
                           "fingerprint": dataset.fingerprint()},
                  source=source)
        write_json(path / CONFIG, {
            "format": RUN_FORMAT, "config": config.to_dict(), "model": run.model_config.to_dict(),
            "preprocessing": prep.to_dict(),
            "dataset": {**run.dataset, "source": source.to_dict() if source is not None else None}})
        split.save(path / SPLIT)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """The run at ``path``, as written by this version of dnnh or the one before it."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"run directory {path} not found")
        saved = read_json(path / CONFIG)
        if not isinstance(saved, dict):
            raise DataError(f"{path / CONFIG} must hold a JSON object (format, config, model, preprocessing, "
                            f"dataset), got a JSON {type(saved).__name__}; was it edited?")
        for key in ("config", "model", "dataset"):
            if key in saved and not isinstance(saved[key], dict):
                raise DataError(f"{path / CONFIG}: '{key}' must be an object, got {type(saved[key]).__name__}; "
                                "was it edited?")
        fmt = saved.get("format")
        if fmt not in READABLE_FORMATS:
            raise ValueError(f"{path / CONFIG} is a run of format {fmt!r}; this dnnh reads {READABLE_FORMATS}: "
                             "use the dnnh version that wrote it, or train the run again")
        try:
            config = TrainConfig.from_dict(saved["config"])
            prep = Preprocessing(**check_preprocessing(saved["preprocessing"], path / CONFIG))
            model_config = (ModelConfig.from_dict(saved["model"]) if "model" in saved
                            else config.model_config(prep.channels))
            dataset = dict(saved["dataset"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path / CONFIG} lacks or garbles a field ({exc}); was it edited?") from exc
        if fmt == RUN_FORMAT and "model" not in saved:
            raise ValueError(f"{path / CONFIG} lacks 'model', the architecture its weights were trained as "
                             f"(every {RUN_FORMAT} run records it), so it is refused rather than guessed from the "
                             "training config; restore that config.json (a backup or copy of the run), or train the "
                             "run again (dnnh train --run NEW_DIR ...)")
        check_bounds(model_config, prep, path / CONFIG)
        source = dataset.pop("source", None)
        if source is None and (path / "data.json").exists():  # format /1 kept the source beside the config
            source = read_json(path / "data.json")
        return cls(path=path, config=config, model_config=model_config, prep=prep, split=Split.load(path / SPLIT),
                   dataset=dataset, source=DataSource.from_dict(source) if source else None,
                   reformed=predates_reform(saved["config"]))

    def check_continues(self, config: TrainConfig, split: Split) -> None:
        """Raise unless ``config`` and ``split`` are the ones this run was started with (for --resume)."""
        if self.reformed is not None:
            raise ValueError(f"{self.path} was trained with the {self.config.loss} loss {self.reformed[1]}; this dnnh "
                             "computes that loss differently, so the run cannot be continued: train it again")
        # Where it runs may change (a GPU run resumes on a CPU), and with it the arithmetic --precision auto
        # resolves to there (bf16 on an Ampere GPU, fp32 on an AVX2 CPU; fp16 runs on no CPU): compare the rest.
        may_change = (*PLACEMENT_FIELDS, "precision")
        saved, given = ({k: v for k, v in c.to_dict().items() if k not in may_change} for c in (self.config, config))
        if given != saved:
            raise ValueError(f"--resume needs the same training config as {self.path / CONFIG}; it differs "
                             f"({config_differences(saved, given)})")
        if split != self.split:  # Split compares its four index arrays
            raise ValueError(f"--resume needs the same split as {self.path / SPLIT}; it differs")

    # --- the model ---------------------------------------------------------------------------

    def new_model(self) -> DNNH:
        """A freshly initialised model of this run's architecture."""
        return DNNH.from_config(self.model_config)

    def load_model(self) -> DNNH:
        """The best model of the run, in eval mode; the digest of the bytes it was read from is
        appended to :attr:`loaded_weights`."""
        weights = self.path / BEST_WEIGHTS
        if not weights.exists():
            raise FileNotFoundError(f"{weights} not found: the run has not finished an epoch yet")
        model = self.new_model()
        self.loaded_weights.append(load_weights(model, weights))
        model.eval()
        return model

    def weights_loaded_since(self, mark: int) -> str | None:
        """The digest of the weights :meth:`load_model` read since ``len(loaded_weights)`` was ``mark``
        (None: none were read). An encoder that loaded the model twice (a check, then its engine)
        must have read the same bytes both times: a :class:`ChangedDataError` if the file changed
        in between (a ``train`` writing the run)."""
        digests = set(self.loaded_weights[mark:])
        if len(digests) > 1:
            raise ChangedDataError(f"{self.path / BEST_WEIGHTS} changed while it was being loaded (is a dnnh train "
                                   "writing this run?); run the command again when it is done")
        return digests.pop() if digests else None

    def save_best(self, model: torch.nn.Module, epoch: int) -> None:
        save_weights(model, self.path / BEST_WEIGHTS, metadata={"epoch": str(epoch)})

    def load_best_into(self, model: torch.nn.Module) -> None:
        load_weights(model, self.path / BEST_WEIGHTS)

    # --- checkpoints and history ------------------------------------------------------------

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def save_checkpoint(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """The model's weights and the training ``state`` in one atomic file."""
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        buf = io.BytesIO()
        torch.save({**state, "model": weights}, buf)
        atomic_write_bytes(self.path / CHECKPOINT, buf.getvalue())

    def load_checkpoint(self, model: torch.nn.Module) -> dict[str, Any]:
        """Load the checkpoint's weights into ``model``; return the rest of its state."""
        path = self.path / CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # a pickle that is not plain tensors and containers is refused, not run
            if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
                why = ("it holds Python objects other than tensors and plain containers, and loading those could "
                       "run code: refused (it is not a checkpoint dnnh wrote)")
            else:
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"cannot read training state {path}: {why}") from None
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{path} is not a dnnh checkpoint (no model weights in it)")
        _load_state_dict(model, state.pop("model"), path)
        return state

    def write_history(self, history: list[dict], best_epoch: int, best_val_map: float) -> None:
        write_json(self.path / HISTORY, {"history": history, "best_epoch": best_epoch, "best_val_map": best_val_map})

    def read_timing(self) -> float:
        """Training seconds recorded so far by :meth:`write_timing` (0 when none)."""
        path = self.path / TIMING
        return float(read_json(path)["seconds"]) if path.exists() else 0.0

    def write_timing(self, seconds: float, epoch: int) -> None:
        write_json(self.path / TIMING, {"seconds": seconds, "epoch": epoch})

    # --- data and scores ---------------------------------------------------------------------

    def load_dataset(self, source: DataSource | None = None):
        """The dataset the run was trained on (or ``source`` instead), checked by :meth:`check_data`."""
        source = source or self.source
        if source is None:
            raise FileNotFoundError(f"{self.path} does not record where its data came from; name it with --data")
        dataset = source.load()
        self.check_data(dataset)
        return dataset

    def check_data(self, dataset: Any) -> None:
        """Raise unless ``dataset`` is the data the run was trained on (same fingerprint, split fits).

        A split stores positions: if the data changed (one image added, one removed) the same
        positions point at other images and labels, and scoring them would be silently wrong.
        """
        difference = fingerprint_difference(self.dataset.get("fingerprint"), dataset.fingerprint())
        if difference:
            raise ValueError(f"the data differs from what {self.path} was trained on: {difference}; its split "
                             "no longer points at the same items. Train a new run on the data as it is now "
                             "(dnnh train --run NEW_DIR ...), or restore the data")
        self.split.check_fits(len(dataset))

    def write_evaluation(self, query: CodeSet, database: CodeSet, report: RetrievalReport) -> list[Path]:
        """Codes, metrics.json and the two figures of a scored run; returns the paths written."""
        from dnnh.metrics import plot_pr_curves, plot_precision_at_k

        paths = [self.path / CODES["query"], self.path / CODES["database"], self.path / METRICS]
        query.save(paths[0])
        database.save(paths[1])
        write_json(paths[2], report.to_dict())
        label, name = f"DNNH {self.model_config.nbits} bits", self.dataset["name"]
        paths.append(plot_pr_curves({label: report}, self.path / "pr_curve.png", title=f"{name}: precision-recall"))
        paths.append(plot_precision_at_k({label: report}, self.path / "precision_at_k.png",
                                         title=f"{name}: precision@k"))
        return paths

