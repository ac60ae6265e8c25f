"""Run-directory files: weights in safetensors, the rest as JSON, every write atomic.

A run directory holds ``config.json`` (training config, preprocessing, dataset facts),
``split.json``, ``model.safetensors`` (the best weights on validation), ``history.json`` and
``checkpoint/`` (last weights and ``state.pt``: optimizer, schedule, random generators, epoch)
from which ``--resume`` continues.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from dnnh.atomic import atomic_write_bytes, atomic_write_text

RUN_FORMAT = "dnnh-run/1"


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write_bytes(Path(path), st_save(tensors, metadata=metadata))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    try:
        tensors = st_load(Path(path).read_bytes())
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"cannot read weights {path}: {exc}") from exc
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights {path} do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}")


def save_state(state: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_state(path: Path) -> dict:
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot read training state {path}: {exc}") from exc


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(Path(path), json.dumps(payload, indent=2))


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {path.parent} a dnnh run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
