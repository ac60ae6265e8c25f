"""torchvision and timm as TEST-ONLY references for the pretrained backbones (never a dnnh dependency).

They live outside the environment, in the folder ``DNNH_REFERENCE_MODELS`` names (default
``.venv-test/tvref``; .ci/run fills it with ``pip install --no-deps --target``). The torchvision
0.28 wheel that matches torch 2.13 is a CUDA build whose C++ ops do not load here; its pure-Python
models import once its two operator-registration modules are replaced by empty ones. Tests that
need a reference skip, saying why, when the folder lacks it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest

REFERENCES = Path(os.environ.get("DNNH_REFERENCE_MODELS", Path(__file__).parents[2] / ".venv-test" / "tvref"))
INSTALL = f"pip install --no-deps --target {REFERENCES} torchvision==0.28.0 timm"


def _reference(name: str):
    if not (REFERENCES / name).is_dir():
        pytest.skip(f"{name} is a test-only reference, absent from {REFERENCES}: {INSTALL}")
    if str(REFERENCES) not in sys.path:
        sys.path.append(str(REFERENCES))
    for stub in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def torchvision_models():
    return _reference("torchvision").models


@pytest.fixture(scope="session")
def timm():
    _reference("torchvision")  # timm imports torchvision's transforms
    return _reference("timm")
