"""Images to codes: :class:`Encoder` and the engines (backends) it runs on.

* :mod:`dnnh.encoder.names`: the engines' names, ``ROLES`` and the one default, importable without
  torch (the command line builds its parser from them);
* :mod:`dnnh.encoder.core`: :class:`Encoder`;
* :mod:`dnnh.encoder.backends`: the one registry of backends (``torch``, ``torch-bf16``,
  ``onnxruntime``, ``onnxruntime-int8``) and :func:`open_backend`;
* :mod:`dnnh.encoder.auto`: how ``auto`` chooses, and the reason it gives;
* :mod:`dnnh.encoder.onnx`: the float network as an in-memory ONNX graph (onnxruntime engines).

The names below are loaded on first use (PEP 562), so ``import dnnh.encoder.names`` stays light
while ``from dnnh.encoder import Encoder`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dnnh.encoder.names import AUTO, DEFAULT_ENGINE, ENGINE_CHOICES, ENGINES, ROLES, check_engine

_LAZY = {
    "Encoder": "dnnh.encoder.core",
    "BACKENDS": "dnnh.encoder.backends", "EncoderBackend": "dnnh.encoder.backends",
    "EngineChoice": "dnnh.encoder.backends", "TorchBackend": "dnnh.encoder.backends",
    "make_backend": "dnnh.encoder.auto", "open_backend": "dnnh.encoder.auto",
    "choose_auto": "dnnh.encoder.auto",
}

if TYPE_CHECKING:
    from dnnh.encoder.auto import choose_auto, make_backend, open_backend
    from dnnh.encoder.backends import BACKENDS, EncoderBackend, EngineChoice, TorchBackend
    from dnnh.encoder.core import Encoder


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dnnh.encoder' has no attribute {name!r}")


__all__ = ["AUTO", "BACKENDS", "DEFAULT_ENGINE", "ENGINES", "ENGINE_CHOICES", "ROLES", "Encoder", "EncoderBackend",
           "EngineChoice", "TorchBackend", "check_engine", "choose_auto", "make_backend", "open_backend"]
