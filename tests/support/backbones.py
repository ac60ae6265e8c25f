"""A pretrained backbone's weights file made here: a seeded random network saved as its publisher would
(``torch.save(model.state_dict(), path)``), for tests that need a file without downloading one."""

from __future__ import annotations

from pathlib import Path

import torch

from dnnh.nn import build_backbone


def seeded_weights_file(folder: Path, name: str = "resnet18", seed: int = 3) -> Path:
    """``folder/<name>-test.pth``: the state dict of ``build_backbone(name)`` drawn with ``seed``."""
    torch.manual_seed(seed)
    path = Path(folder) / f"{name}-test.pth"
    torch.save(build_backbone(name).state_dict(), path)
    return path
