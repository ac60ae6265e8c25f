"""DeepHash-pytorch's list files as a dataset whose split is the files: ``--protocol lists``.

The field's ImageNet-100, NUS-WIDE-21 and MS-COCO numbers are all on the splits DeepHash-pytorch
publishes as three text files, ``train.txt``, ``test.txt`` and ``database.txt``, one image a
line: ``path 0 1 0 ...`` (the path relative to an image root, then a one-hot or multi-hot label
vector). A folder holding the three is a :class:`ListDataset`: one item per distinct image (a
training image that the database lists too is one item, as in the published splits), the split
exactly the files' (queries = test.txt, database = database.txt, training = train.txt), and the
metric each dataset is reported with: mAP@1000 for ImageNet-100, mAP@5000 for NUS-WIDE and
MS-COCO, mAP over the whole database for CIFAR-10 (and MIRFlickr, VOC2012), recognised from the
folder's name as DeepHash-pytorch's ``config_dataset`` does (a ``topk`` option overrides it);
:func:`reported_topk` is that K for the commands that score a run (a ``--topk`` flag first).

Paths resolve against ``image_root`` (default: the folder); rows that leave it are refused unless
``allow_outside_paths`` (the manifest rule, :mod:`dnnh.data.folders`). Rows with exactly one
label everywhere make a single-label set (class ids), otherwise the 0/1 matrix is kept. Images
are resized to a square on load (the 224 px pipeline's 256 side), not by their shorter side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnnh.data.dataset import FileDataset
from dnnh.data.folders import ManifestError, load_manifest

LIST_FILES = {"train": "train.txt", "query": "test.txt", "database": "database.txt"}
#: (folder-name fragment, K of the reported mAP@K or None for all, the dataset's name in papers):
#: DeepHash-pytorch's ``config_dataset`` (utils/tools.py) sets ``topK`` by its dataset name the same
#: way: imagenet 1000; nuswide_21, nuswide_21_m, nuswide_81_m and coco 5000; cifar*, mirflickr and
#: voc2012 -1 (the whole database).
METRICS = (("imagenet", 1000, "ImageNet-100"), ("nus", 5000, "NUS-WIDE"), ("coco", 5000, "MS-COCO"),
           ("cifar", None, "CIFAR-10"), ("mirflickr", None, "MIRFlickr-25K"), ("voc", None, "VOC2012"))


def is_list_folder(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in LIST_FILES.values())


def dataset_metric(name: str) -> tuple[int | None, str]:
    """(K, why) for a dataset folder called ``name``: the mAP@K its published numbers use."""
    key = name.lower().replace("-", "").replace("_", "")
    for fragment, topk, paper_name in METRICS:
        if fragment in key:
            at = f"mAP@{topk}" if topk else "mAP over the whole database (mAP@all)"
            return topk, f"{at}, as {paper_name} is reported"
    return None, "mAP over the whole database (folder name not a known dataset; pass --topk to set K)"


def reported_topk(dataset: object, asked: int | None = None) -> tuple[int | None, str]:
    """(K, why): the K of the mAP@K to report for ``dataset`` (None: the whole database).

    ``asked`` (a ``--topk`` flag) wins; otherwise a list folder's published metric
    (:attr:`ListDataset.topk`, from its name); any other dataset: the whole database. The
    commands that score a run call this so that a run on DeepHash-pytorch's lists reports the
    figure the field compares, without the user remembering which K goes with which dataset.
    """
    if asked is not None:
        return int(asked), f"mAP@{int(asked)} (as asked)"
    if isinstance(dataset, ListDataset):
        return dataset.topk, dataset.metric
    return None, "mAP over the whole database"


@dataclass
class ListDataset(FileDataset):
    """A :class:`FileDataset` that carries its published split (``parts``) and metric (``topk``)."""

    parts: dict[str, np.ndarray] = field(default_factory=dict)
    topk: int | None = None
    metric: str = ""


def load_list_folder(root: str | Path, image_root: str | Path | None = None, channels: int = 3,
                     image_size: int | tuple[int, int] | None = None, skip_corrupt: bool = False,
                     topk: int | None = None, allow_outside_paths: bool = False) -> ListDataset:
    """The folder ``root`` with train.txt, test.txt and database.txt as one dataset and its split."""
    root = Path(root)
    if not is_list_folder(root):
        missing = [n for n in LIST_FILES.values() if not (root / n).is_file()]
        raise FileNotFoundError(f"{root} is not a list folder: {', '.join(missing)} missing "
                                f"(expected {', '.join(LIST_FILES.values())})")
    base = Path(image_root) if image_root is not None else root
    position: dict[str, int] = {}
    paths: list[Path] = []
    rows: list[np.ndarray] = []
    parts: dict[str, list[int]] = {}
    width = None
    for part, name in LIST_FILES.items():
        listed = load_manifest(root / name, root=base, channels=channels, skip_corrupt=skip_corrupt, multilabel=True,
                               allow_outside_paths=allow_outside_paths)
        if width is not None and listed.labels.shape[1] != width:
            raise ManifestError(f"{root / name}: label vectors of {listed.labels.shape[1]} values, but "
                                f"{LIST_FILES['train']} has {width}; the three files must share their labels")
        width = listed.labels.shape[1]
        parts[part] = []
        for p, vector in zip(listed.paths, listed.labels):
            key = os.path.realpath(p)
            i = position.setdefault(key, len(paths))
            if i == len(paths):
                paths.append(p)
                rows.append(vector)
            elif not np.array_equal(rows[i], vector):
                raise ManifestError(f"{root / name}: {p} has other labels than in an earlier list; "
                                    "an image keeps its labels across the three files")
            parts[part].append(i)
    labels = np.stack(rows)
    if (labels.sum(axis=1) == 1).all():  # one-hot everywhere: class ids
        labels = labels.argmax(axis=1).astype(np.int64)
    k, metric = dataset_metric(root.resolve().name)
    if topk is not None:
        k, metric = int(topk), f"mAP@{int(topk)} (as asked)"
    return ListDataset(paths=paths, labels=labels, name=root.resolve().name, class_names=[str(j) for j in range(width)],
                       channels=channels, image_size=image_size, root=base,
                       parts={p: np.asarray(v, dtype=np.int64) for p, v in parts.items()}, topk=k, metric=metric)
