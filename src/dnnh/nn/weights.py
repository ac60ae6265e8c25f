"""Reading a user's weights file into a backbone: all of it, or a one-line refusal.

A pretrained file is only worth something if every tensor lands where its publisher meant it, so
loading is strict: after the documented rewrites (unwrap a ``state_dict``/``model`` checkpoint,
strip ``module.`` (DataParallel), ``encoder_q.`` (MoCo) and ``backbone.`` prefixes, drop the
classifier the hash layer replaces, map a publisher's old key spellings), any missing or
unexpected key or wrong shape is refused, naming the first few — a partial load would train from
half-random weights and report it as pretrained. ``num_batches_tracked`` (absent from files saved
before PyTorch 0.4.1) is the one key allowed to be missing: it only counts batches.

``.pth``/``.pt``/``.bin`` files are read with ``torch.load(weights_only=True)``, which refuses
arbitrary pickled objects (a pickled whole model is refused, saying to save its ``state_dict()``);
``.safetensors`` with safetensors. :class:`WeightsFile` (name, size, sha256) is what a run records.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch

from dnnh.errors import DataError, InputError

PREFIXES = ("module.", "encoder_q.", "backbone.")
WRAPPERS = ("state_dict", "model", "model_state_dict")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SHOWN = 3  # keys named in a refusal


@dataclass(frozen=True)
class WeightsFile:
    """Where a backbone's weights came from: the file's name, size in bytes and sha256."""

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> "WeightsFile":
        path = Path(path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return cls(name=path.name, size=path.stat().st_size, sha256=digest.hexdigest())

    def to_dict(self) -> dict:
        return asdict(self)


def _first(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from a training checkpoint; ValueError in one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"{path.name} is not a readable safetensors file: {str(exc).splitlines()[0]}") from None
    elif suffix in TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "Unsupported global" not in str(exc):  # not a class pickled inside: not a torch file at all
                raise DataError(f"{path.name} is not a readable torch file: {str(exc).splitlines()[0]}") from None
            raise DataError(f"{path.name} holds a pickled object, not a state dict: load it where its class "
                             f"is defined and save its state_dict() (torch.save(model.state_dict(), ...))") from None
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path.name} is not a readable torch file: {str(exc).splitlines()[0]}") from None
    else:
        raise DataError(f"{path.name}: expected a .safetensors file or a torch state dict "
                         f"({', '.join(TORCH_SUFFIXES)}), got {suffix or 'no suffix'}")
    return _unwrap(state, path.name)


def _unwrap(state: object, name: str) -> dict[str, torch.Tensor]:
    while isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not state:
        raise DataError(f"{name} holds no state dict (a mapping of parameter names to tensors)")
    if isinstance(state.get("state_dict"), Mapping):  # a checkpoint with tensors beside its state_dict
        state = state["state_dict"]
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{name} is not a plain state dict: entries {_first(bad)} are not tensors")
    return dict(state)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes; where only some keys carry one (MoCo: encoder_q beside encoder_k and
    the queue), the keys under it are the network's and the others belong to the wrapper."""
    for prefix in PREFIXES:
        inside = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if inside:
            state = inside
    return state


def adapt_state_dict(state: dict[str, torch.Tensor], heads: tuple[str, ...],
                     renames: tuple[tuple[str, str], ...] = ()) -> dict[str, torch.Tensor]:
    """The documented rewrites: prefixes stripped, classifier heads dropped, old spellings renamed."""
    state = _strip_prefixes(state)
    out = {}
    for key, value in state.items():
        if key.startswith(heads):
            continue
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


def fit_report(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    """None when ``state`` fits ``expected`` exactly (shapes too), else what is wrong, briefly."""
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
              if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_first(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} wrong shapes: {_first(shapes)}")
    return "; ".join(problems) or None
