"""The methods a bench can run, by the names used on the command line and in result tables.

Three kinds:

- ``shallow``: a baseline estimator of :mod:`dnnh.baselines` on raw pixels (lsh, pcah, itq, sh,
  cca-itq, ksh, sdh);
- ``deep``: a :class:`~dnnh.config.TrainConfig` recipe plus the overrides that define the
  method (DNNH, its ablations, the later losses, CNNH). Every deep method of one bench shares the
  backbone, input size, epochs and seed given to the bench, so only the method differs;
- ``features``: ``<shallow>@features``, a shallow method on the penultimate (50q backbone)
  features of the bench's own ``dnnh`` model at the same code length: it separates what the
  learned features buy from what the learned hash layer buys.

``dnnh-eps<X>`` and ``dnnh-margin<X>`` names are parsed, so any threshold band or margin can be
measured without a registry entry.

A bench folder that was tuned (:mod:`dnnh.bench.tuning`) gives each tuned method its chosen
settings (``Method.with_tuning``): the name stays, the settings join the method's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from dnnh.baselines.catalog import SHALLOW_CATALOG
from dnnh.config import TrainConfig

KINDS = ("shallow", "deep", "features")
#: Tuned settings that scale with the code length when carried from the tuning length to another
#: (the triplet margin: squared distances between codes range over [0, q], docs in training.config).
SCALES_WITH_BITS = ("margin",)


def transfer(settings: Mapping[str, Any], from_bits: int, to_bits: int) -> dict[str, Any]:
    """Settings chosen at ``from_bits`` as they apply at ``to_bits`` (see :data:`SCALES_WITH_BITS`)."""
    return {k: (float(v) * int(to_bits) / int(from_bits) if k in SCALES_WITH_BITS and v is not None else v)
            for k, v in settings.items()}


@dataclass(frozen=True)
class Method:
    """One row of a results table: how to produce codes for it."""

    name: str
    kind: str
    description: str
    shallow: str | None = None  # the estimator of shallow and features methods
    recipe: str = "modern"
    overrides: tuple[tuple[str, Any], ...] = ()  # the TrainConfig fields that define a deep method
    tuned: tuple[tuple[str, Any], ...] = ()  # settings chosen by tuning at ``tuned_bits`` (see transfer)
    tuned_bits: int | None = None

    def with_tuning(self, settings: Mapping[str, Any], bits: int) -> "Method":
        """This method with ``settings`` chosen at ``bits`` bits (carried to other lengths by :func:`transfer`)."""
        return replace(self, tuned=tuple(sorted(settings.items())), tuned_bits=int(bits))

    def own_settings(self, nbits: int) -> dict[str, Any]:
        """The TrainConfig fields this method sets itself at ``nbits``: its definition, then its tuning."""
        own = dict(self.overrides)
        if self.tuned:
            own.update(transfer(dict(self.tuned), self.tuned_bits, nbits))
        return own

    def train_config(self, nbits: int, common: Mapping[str, Any]) -> TrainConfig:
        """This method's config at ``nbits``: the recipe, the bench's shared fields, then its own.

        A shared field that the method itself sets (say ``eps`` for dnnh-threshold, or a tuned
        ``lr``) is refused rather than silently dropped or allowed to erase the difference the
        method is about.
        """
        if self.kind != "deep":
            raise ValueError(f"{self.name} is a {self.kind} method; it has no training config")
        own = self.own_settings(nbits)
        clash = sorted(set(own) & set(common))
        if clash:
            raise ValueError(f"training option(s) {clash} cannot be set for the whole bench: method {self.name} "
                             f"sets them itself ({', '.join(f'{k}={own[k]!r}' for k in clash)})")
        if "nbits" in common or "bits" in common:
            raise ValueError("code lengths (nbits) are given per entry, not among the shared training options")
        return TrainConfig.from_recipe(self.recipe, **{**common, **own, "nbits": int(nbits)})


def _deep(name: str, description: str, recipe: str = "modern", **overrides: Any) -> Method:
    return Method(name, "deep", description, recipe=recipe, overrides=tuple(sorted(overrides.items())))


_DEEP = [
    _deep("dnnh", "DNNH, modern recipe: class-balanced batches, every valid in-batch triplet, AdamW, cosine schedule, "
          "no threshold while training, margin bits/12"),
    _deep("dnnh-paper", "DNNH, paper recipe: random triplets (three streams), SGD momentum 0.9, lr x0.1 late",
          recipe="paper"),
    _deep("dnnh-fc", "DNNH with one fully connected hash layer instead of divide-and-encode (paper ablation)",
          encoder="fc"),
    _deep("dnnh-threshold", "DNNH with the piece-wise threshold, eps 0.1, band narrowed from 0.5 over the run "
          "(the modern recipe trains without it)", eps=0.1),
    _deep("dnnh-random", "DNNH with random triplets (the paper's sampling) under the modern optimiser",
          triplets="random"),
    _deep("dnnh-semi-hard", "DNNH mining semi-hard in-batch triplets", triplets="semi-hard"),
    _deep("dnnh-hard", "DNNH mining hard in-batch triplets", triplets="hard"),
    _deep("dnnh-batch-hard", "DNNH mining the hardest positive and negative per anchor", triplets="batch-hard"),
    _deep("dpsh", "DPSH (Li et al. 2016): pairwise likelihood loss on the same network, quantisation weighted "
          "per element (eta)", loss="dpsh"),
    _deep("dsh", "DSH (Liu et al. 2016): contrastive loss with a quantisation term", loss="dsh"),
    _deep("csq", "CSQ (Yuan et al. 2020): codes pulled to class hash centres (Hadamard rows at power-of-two "
          "lengths, else random rows filtered by the reference's distance rule)", loss="csq"),
    _deep("classifier", "Sablayrolles et al. 2017 reference: a classifier on a q-unit tanh layer, codes sign(u)",
          loss="classifier"),
    _deep("cnnh", "CNNH (Xia et al. 2014): stage-1 target codes from the similarity matrix, then the network "
                  "learns them", loss="cnnh"),
    _deep("orthohash", "OrthoHash (Hoe et al. 2021): cross-entropy over scaled cosines (s 8, margin 0.2) of the "
          "batch-normalised codes to a fixed Bernoulli codebook, one code a class", loss="orthohash"),
    _deep("dtsh", "DTSH (Wang et al. 2016): triplet likelihood on inner products (margin 5 bits) plus "
          "quantisation", loss="dtsh"),
    _deep("hashnet", "HashNet (Cao et al. 2017): weighted pairwise likelihood on tanh(beta u), beta raised "
          "every 200 steps (continuation)", loss="hashnet"),
    _deep("greedyhash", "GreedyHash (Su et al. 2018): a classifier on sign(u) with the straight-through "
          "gradient, plus the cubic | |u| - 1 |^3 penalty", loss="greedyhash"),
    _deep("dpn", "DPN (Fan et al. 2020): bit-wise hinge (margin 1) against a random +-1 target a class",
          loss="dpn"),
]
_SHALLOW = {name: Method(name, "shallow", f"{cls} on raw pixels" + (" (supervised)" if supervised else " (unsupervised)"),
                         shallow=name)
            for name, (_, cls, supervised) in SHALLOW_CATALOG.items()}
METHODS: dict[str, Method] = {**_SHALLOW, **{m.name: m for m in _DEEP}}

_EPS = re.compile(r"dnnh-eps(?P<value>[0-9]*\.?[0-9]+)")
_MARGIN = re.compile(r"dnnh-margin(?P<value>[0-9]*\.?[0-9]+)")
PATTERNS = ("dnnh-eps<X> (threshold half band 0 <= X <= 0.5, e.g. dnnh-eps0.05)",
            "dnnh-margin<X> (triplet margin X > 0 in squared-distance units, e.g. dnnh-margin4)",
            "<shallow>@features (e.g. itq@features: a shallow method on the penultimate features of this "
            "bench's dnnh model at the same bits)")


def known_methods() -> str:
    """The names a user may give, for error messages and ``--help``."""
    return ", ".join(METHODS) + "; and " + "; ".join(PATTERNS)


def resolve_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (case-insensitive); a clear error listing the known ones."""
    key = str(name).strip().lower()
    if key in METHODS:
        return METHODS[key]
    eps = _EPS.fullmatch(key)
    if eps:
        value = float(eps["value"])
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"method {name!r}: the threshold half band must be in [0, 0.5], got {value}")
        return _deep(f"dnnh-eps{value:g}", f"DNNH with threshold half band eps={value:g}", eps=value)
    margin = _MARGIN.fullmatch(key)
    if margin:
        value = float(margin["value"])
        if value <= 0:
            raise ValueError(f"method {name!r}: the triplet margin must be positive, got {value}")
        return _deep(f"dnnh-margin{value:g}", f"DNNH with triplet margin {value:g}", margin=value)
    if key.endswith("@features"):
        base = key[: -len("@features")]
        if base in _SHALLOW:
            cls = SHALLOW_CATALOG[base][1]
            return Method(key, "features", f"{cls} on the penultimate features of this bench's dnnh model",
                          shallow=base)
    raise ValueError(f"unknown method {name!r}; known methods: {known_methods()}")


def resolve_methods(names: Sequence[str] | str) -> list[Method]:
    """Resolve a list (or comma-separated string) of names, dropping repeats, keeping order.

    ``<shallow>@features`` needs ``dnnh`` in the same list: its features come from that run.
    """
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError(f"no methods given; known methods: {known_methods()}")
    methods = list({m.name: m for m in map(resolve_method, names)}.values())
    if any(m.kind == "features" for m in methods) and "dnnh" not in {m.name for m in methods}:
        raise ValueError("<shallow>@features methods use the penultimate features of the bench's dnnh model: "
                         "add 'dnnh' to the methods")
    return methods
