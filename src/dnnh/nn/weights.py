"""Reading a user's weights file into a backbone: all of it, or a one-line refusal.

A pretrained file is only worth something if every tensor lands where its publisher meant it, so
loading is strict: after the documented rewrites (unwrap a ``state_dict``/``model`` checkpoint,
strip ``module.`` (DataParallel), ``encoder_q.`` (MoCo) and ``backbone.`` prefixes, drop the
classifier the hash layer replaces, map a publisher's old key spellings), any missing or
unexpected key or wrong shape is refused, naming the first few — a partial load would train from
half-random weights and report it as pretrained. ``num_batches_tracked`` (absent from files saved
before PyTorch 0.4.1) is the one key allowed to be missing: it only counts batches.

``.pth``/``.pt``/``.bin`` files are read with ``torch.load(weights_only=True)``, which refuses
arbitrary pickled objects (a pickled whole model, or a pickle that would run code, is refused saying
to save its ``state_dict()``; torch's own advice to reload with ``weights_only=False`` is not passed
on: that is how such a file's code would run); ``.safetensors`` with safetensors.
:class:`WeightsFile` (name, size, sha256) is what a run records.

Before any of that, :func:`check_weights_path` says what the path is when it is not a file (a
folder, a FIFO, a device, a symlink loop, an empty file) without opening it: opening a FIFO blocks
until something writes to it, and ``/dev/zero`` never ends. After it, every floating tensor must be
finite: a file with NaN or inf weights would train a NaN model and be blamed on the run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch

from dnnh.errors import DataError, InputError

PREFIXES = ("module.", "encoder_q.", "backbone.")
WRAPPERS = ("state_dict", "model", "model_state_dict")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SHOWN = 3  # keys named in a refusal
#: How many wrappers deep a state dict is looked for (a real checkpoint nests one or two).
MAX_WRAPPING = 8
#: What a path is when it is not a regular file, by ``stat`` test.
NOT_FILES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


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


def check_weights_path(path: str | Path, what: str = "weights file") -> Path:
    """``path`` if it is a non-empty regular file (after links); else one line saying what it is.

    Only ``stat`` is called: a FIFO is never opened (that would wait for a writer) nor a device read.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{what} {path} is a symbolic link loop") from None
        if path.is_symlink():
            raise InputError(f"{what} {path} is a symbolic link to {os.readlink(path)}, which does "
                             "not exist") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InputError(f"{what} {path} does not exist") from None
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None
    for test, kind in NOT_FILES:
        if test(info.st_mode):
            raise InputError(f"{what} {path} is {kind}, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} {path} is not a regular file")
    if info.st_size == 0:
        raise DataError(f"{what} {path} is empty (0 bytes)")
    return path


def _pickle_refusal(path: Path, exc: pickle.UnpicklingError) -> DataError:
    """The refusal of a file ``torch.load(weights_only=True)`` would not unpickle: what it names and how to
    make a loadable file, never torch's advice to reload with ``weights_only=False`` (that runs its code)."""
    text = str(exc)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    with open(path, "rb") as f:
        pickled = f.read(1) == b"\x80"  # the PROTO opcode every pickle since protocol 2 starts with
    if "Weights only load failed" not in text or not (named or pickled):  # garbage, not a refused object
        detail = ("neither a zip archive nor a pickle" if "Weights only load failed" in text or not text
                  else text.splitlines()[0])
        return DataError(f"{path.name} is not a readable torch file: {detail}")
    what = f" (it names {named.group(1)})" if named else ""
    return DataError(f"{path.name} holds a pickled object, not a state dict{what}, and was not loaded: unpickling "
                     "it could run code. Load the model where its class is defined and save its state_dict() "
                     "(torch.save(model.state_dict(), path)), then pass that file")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from a training checkpoint; ValueError in one line."""
    path = check_weights_path(path)
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
            raise _pickle_refusal(path, exc) from None
        except (RuntimeError, OSError, EOFError, ValueError, IndexError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{path.name} is not a readable torch file: {first}") from None
    else:
        raise DataError(f"{path.name}: expected a .safetensors file or a torch state dict "
                         f"({', '.join(TORCH_SUFFIXES)}), got {suffix or 'no suffix'}")
    state = _unwrap(state, path.name)
    _check_finite(state, path.name)
    return state


def _unwrap(state: object, name: str) -> dict[str, torch.Tensor]:
    seen: set[int] = set()  # a dict that wraps itself (or a pair that wrap each other) would be followed forever
    while isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        key = next((k for k in WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if key is None:
            break
        seen.add(id(state))
        if id(state[key]) in seen:
            raise DataError(f"{name} holds no state dict: its {key!r} entry refers back to itself (a loop of "
                            "wrappers)")
        if len(seen) > MAX_WRAPPING:
            raise DataError(f"{name} holds no state dict: its wrappers nest more than {MAX_WRAPPING} deep")
        state = state[key]
    if not isinstance(state, Mapping) or not state:
        raise DataError(f"{name} holds no state dict (a mapping of parameter names to tensors)")
    if isinstance(state.get("state_dict"), Mapping):  # a checkpoint with tensors beside its state_dict
        state = state["state_dict"]
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{name} is not a plain state dict: entries {_first(bad)} are not tensors")
    return dict(state)


def _check_finite(state: Mapping[str, torch.Tensor], name: str) -> None:
    """DataError naming the first floating tensor with a NaN or an infinity (integer tensors are always finite)."""
    for key, value in state.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "infinite"
            raise DataError(f"{name}: tensor {key} holds {kind} values; a model trained from it would be NaN. "
                            "Use a file saved before the training that wrote it diverged")


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
