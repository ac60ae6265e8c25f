"""One entry point from a name or a path to a dataset, and one from a dataset to a split.

``dnnh train --data X`` passes X here untouched: X is a known name (``digits``, ``mnist``,
``fashion-mnist``, ``cifar10``, ``svhn``, ``nus-wide``) or a path, which is recognised by what is
there (a folder of class folders, a manifest, a CIFAR/IDX/SVHN/NUS-WIDE layout), so a user does not
have to say what kind of data they brought.

Split protocols (all seeded: same seed, same split):

- ``paper``: per class (per concept for multi-label data) ``queries_per_class`` queries and
  ``train_per_class`` training images; every non-query item is the database; training inside it.
  Strict: a class short of the counts is an error.
- ``auto``: ``paper`` exactly (same indices) when its counts fit every class; otherwise, per class,
  queries about 10% of the class (1 to ``queries_per_class``) and training at most 80% of the rest
  (up to ``train_per_class``). The counts drawn are in ``split.counts`` and ``split.json``.
- ``cifar10-1``: the same with the counts fixed at 100 and 500 over the whole set (CIFAR-10:
  1,000 queries, 5,000 training images, a database of 59,000), DeepHash-pytorch's ``cifar10-1``.
- ``cifar10-2``: the official test images are the queries; the official training images are both
  the training set and the database (CIFAR-10: 10,000 / 50,000 / 50,000). Needs ``dataset.is_test``.
- ``lists``: the split a folder of DeepHash-pytorch list files publishes (test.txt the queries,
  database.txt the database, train.txt the training set; :mod:`dnnh.data.lists`).
- ``unseen``: a seeded quarter of the classes (at least two) never in training or validation;
  ``queries_per_class`` queries from each of them, ``train_per_class`` training images from each
  other class; scored against the held-out classes' database items and, second, the whole
  database (:func:`dnnh.data.splits.unseen_split`; split.json lists ``held_out``).

Every protocol then carves ``val_fraction`` of the training images out as a validation set (still
in the database), so model selection never looks at queries; ``val_fraction=0`` keeps the
training set exactly as the protocol draws it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dnnh.data.cifar import CIFAR10_FOLDER, CIFAR10_TARBALL, load_cifar10
from dnnh.data.dataset import ArrayDataset, FileDataset
from dnnh.data.digits import load_digits
from dnnh.data.folders import load_image_folder, load_manifest
from dnnh.data.idx import PARTS, find_idx_file, load_fashion_mnist, load_mnist
from dnnh.data.lists import is_list_folder, load_list_folder
from dnnh.data.nuswide import load_nuswide
from dnnh.data.splits import Split, _carve_validation, auto_split, paper_split, unseen_split
from dnnh.data.svhn import SVHN_FILES, load_svhn

Dataset = ArrayDataset | FileDataset

PROTOCOLS = ("paper", "auto", "cifar10-1", "cifar10-2", "lists", "unseen")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".txt", ".list")


def _digits(root: str | Path | None = None) -> ArrayDataset:
    return load_digits()


# Each loader takes ``root`` (digits ignores it) plus its own keyword options.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "svhn": load_svhn,
    "nus-wide": load_nuswide,
}
ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
           "nuswide": "nus-wide", "nus-wide-21": "nus-wide", "sklearn-digits": "digits"}


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` knows (paths are accepted too)."""
    return list(LOADERS)


def _canonical(name: str) -> str | None:
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    return key if key in LOADERS else None


_COMMON = ("skip_corrupt", "allow_outside_paths")  # load_dataset's own keywords, passed where they apply


def _call(loader: Callable[..., Dataset], what: str, skip_corrupt: bool, allow_outside_paths: bool = False,
          **kwargs: Any) -> Dataset:
    """Call ``loader`` with the options it accepts; an unknown option is an error listing the accepted ones."""
    params = inspect.signature(loader).parameters
    accepted = [p for p in params if p != "root"]
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(a for a in accepted if a not in _COMMON) or 'none'}")
    if "skip_corrupt" in params:  # only file-based sets have anything to skip
        kwargs["skip_corrupt"] = skip_corrupt
    if "allow_outside_paths" in params:  # only folders and manifests name paths
        kwargs["allow_outside_paths"] = allow_outside_paths
    return loader(**kwargs)


def detect_format(path: Path) -> str:
    """What kind of data ``path`` holds: a dataset name, ``manifest`` or ``folder``; raise if unknown."""
    if path.is_file():
        if path.name == CIFAR10_TARBALL or path.name.endswith(".tar.gz") and "cifar-10" in path.name:
            return "cifar10"
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            return "manifest"
        raise ValueError(f"{path}: a file, but not a manifest (.csv, .jsonl, .txt) or {CIFAR10_TARBALL}")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist, and {path.name!r} is not a dataset name "
                                f"({', '.join(dataset_names())})")
    if is_list_folder(path):
        return "lists"
    if (path / "data_batch_1").is_file() or (path / CIFAR10_FOLDER).is_dir() or (path / CIFAR10_TARBALL).is_file():
        return "cifar10"
    if find_idx_file(path, PARTS["train_images"]) is not None:
        return "idx"
    if (path / SVHN_FILES["train"][0]).is_file():
        return "svhn"
    if (path / "ImageList").is_dir() and ((path / "Groundtruth").is_dir() or (path / "AllLabels").is_dir()):
        return "nus-wide"
    return "folder"


def load_dataset(name_or_path: str | Path, root: str | Path | None = None, skip_corrupt: bool = False,
                 allow_outside_paths: bool = False, **options: Any) -> Dataset:
    """Load a dataset by name (with its files in ``root``) or from a path, as it comes.

    ``options`` go to the format's loader, e.g. ``image_size=(64, 64)`` and ``channels=1`` for
    file-based sets, ``download=False`` for CIFAR-10/SVHN, ``extra=True`` for SVHN,
    ``concepts=21`` for NUS-WIDE, ``multilabel=True`` for manifests. ``skip_corrupt`` drops
    missing or undecodable image files after decoding each once up front (file-based sets only;
    see ``dataset.skipped``); by default a bad file is an error naming it when it is first read.
    For a manifest, ``root`` is the folder relative paths resolve against.

    ``allow_outside_paths``: manifest rows (absolute or ``..`` paths) and folder symlinks that lead
    out of the data's folder are refused unless this is true (folders and manifests only; other
    sets ignore it), so a manifest from elsewhere cannot make training read any file on the machine.
    """
    name = _canonical(str(name_or_path)) if isinstance(name_or_path, str) else None
    if name is not None:  # a name wins over a same-named folder in the working directory (use ./name for that)
        loader = LOADERS[name]
        kwargs = dict(options)
        if name == "digits":
            if root is not None:
                raise ValueError("digits: ships with scikit-learn; root is not used")
        else:
            kwargs["root"] = root
        return _call(loader, name, skip_corrupt, allow_outside_paths, **kwargs)
    path = Path(name_or_path).expanduser()
    kind = detect_format(path)
    if kind == "manifest":
        return _call(load_manifest, str(path), skip_corrupt, allow_outside_paths, path=path, root=root, **options)
    if kind == "lists":  # root: the folder the listed paths are relative to (default: the lists' folder)
        return _call(load_list_folder, str(path), skip_corrupt, allow_outside_paths, root=path, image_root=root,
                     **options)
    if root is not None:
        raise ValueError(f"{path}: root is only used with a dataset name or a manifest; got a path and root={root}")
    if kind == "folder":
        return _call(load_image_folder, str(path), skip_corrupt, allow_outside_paths, root=path, **options)
    if kind == "idx":
        name = "fashion-mnist" if "fashion" in str(path).lower() else "mnist"
        return _call(load_fashion_mnist if name == "fashion-mnist" else load_mnist, str(path), skip_corrupt,
                     root=path, **options)
    return _call(LOADERS[kind], str(path), skip_corrupt, root=path, **options)


def _cifar10_2_split(dataset: Dataset, val_fraction: float, seed: int) -> Split:
    is_test = getattr(dataset, "is_test", None)
    if is_test is None:
        raise ValueError(f"protocol cifar10-2 takes the official test images as queries, but dataset "
                         f"{getattr(dataset, 'name', '?')!r} does not mark them (is_test is None); cifar10, svhn, "
                         "mnist and fashion-mnist do. Use protocol='paper' for this dataset")
    query = np.flatnonzero(is_test).astype(np.int64)
    database = np.flatnonzero(~is_test).astype(np.int64)
    if not len(query) or not len(database):
        raise ValueError(f"protocol cifar10-2 needs both official test and training images; "
                         f"found {len(query)} test and {len(database)} training")
    rng = np.random.default_rng(seed)
    train, val = _carve_validation(database, np.asarray(dataset.labels), val_fraction, rng)
    return Split(query=query, database=database, train=train.astype(np.int64), val=val.astype(np.int64),
                 protocol="cifar10-2", seed=seed)


def _lists_split(dataset: Dataset, val_fraction: float, seed: int) -> Split:
    parts = getattr(dataset, "parts", None)
    if not parts:
        raise ValueError(f"protocol lists takes the split from train.txt, test.txt and database.txt, but dataset "
                         f"{getattr(dataset, 'name', '?')!r} was not loaded from such a folder")
    train, val = _carve_validation(parts["train"], np.asarray(dataset.labels), val_fraction, np.random.default_rng(seed))
    return Split(query=parts["query"], database=parts["database"], train=train.astype(np.int64),
                 val=val.astype(np.int64), protocol="lists", seed=seed)


def make_split(dataset: Dataset, protocol: str = "paper", queries_per_class: int = 100,
               train_per_class: int = 500, val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Seeded query / database / train / validation indices for ``dataset`` under ``protocol``.

    ``queries_per_class`` and ``train_per_class`` apply to ``paper`` (exact counts) and ``auto``
    (the counts when they fit, the caps otherwise); ``cifar10-1`` fixes them at
    100 / 500 and ``cifar10-2`` takes the dataset's official partition (see the module docstring).
    """
    key = protocol.strip().lower().replace("_", "-")
    if key == "paper":
        return paper_split(dataset.labels, queries_per_class, train_per_class, val_fraction, seed, protocol="paper")
    if key == "auto":
        return auto_split(dataset.labels, queries_per_class, train_per_class, val_fraction, seed)
    if key == "cifar10-1":
        if (queries_per_class, train_per_class) != (100, 500):
            raise ValueError(f"protocol cifar10-1 fixes 100 queries and 500 training images per class; got "
                             f"{queries_per_class} and {train_per_class}. Use protocol='paper' for other counts")
        return paper_split(dataset.labels, 100, 500, val_fraction, seed, protocol="cifar10-1")
    if key == "cifar10-2":
        return _cifar10_2_split(dataset, val_fraction, seed)
    if key == "lists":
        return _lists_split(dataset, val_fraction, seed)
    if key == "unseen":
        return unseen_split(dataset.labels, queries_per_class, train_per_class, val_fraction, seed)
    raise ValueError(f"unknown split protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
