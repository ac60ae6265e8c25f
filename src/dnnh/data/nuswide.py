"""NUS-WIDE as distributed: the image list plus one 0/1 ground-truth file per concept.

Layout (the authors' ``ImageList.zip``, ``Groundtruth.zip`` and the Flickr image folders)::

    root/ImageList/Imagelist.txt            one image a line, e.g. ``actor\\0001_2124494179.jpg``
                                            (Windows separators; some copies prefix C:\\ImageData\\Flickr\\)
    root/Groundtruth/AllLabels/Labels_<concept>.txt   one 0/1 a line, in the image list's order (81 files)
    root/Flickr/<folder>/<image>.jpg        the images

The paper (and every hashing paper since) keeps the 21 most frequent concepts and the images
carrying at least one of them (195,834 of the 269,648); both are defaults here, computed from the
label files rather than hard-coded, so a partial copy still gets its own most frequent concepts.
Concept columns keep the alphabetical order of ``Concepts81.txt``.

Images are decoded lazily (a :class:`FileDataset`); missing images are an error listing how many
and which, or with ``skip_corrupt=True`` are skipped along with undecodable ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from dnnh.data.dataset import FileDataset
from dnnh.data.folders import build_file_dataset
from dnnh.errors import DataError

LABEL_FILE = re.compile(r"^Labels_(.+)\.txt$")
SPLIT_SUFFIX = re.compile(r"_(Train|Test)$")


class NusWideFormatError(DataError):
    """A NUS-WIDE list or label file that does not match the distributed format."""


def _first_existing(candidates: Sequence[Path], what: str, root: Path) -> Path:
    for c in candidates:
        if c.exists():
            return c
    tried = ", ".join(str(c.relative_to(root)) if c.is_relative_to(root) else str(c) for c in candidates)
    raise FileNotFoundError(f"nus-wide: no {what} under {root} (looked for {tried})")


def read_image_list(path: Path) -> list[str]:
    """Relative image paths (``/`` separators) from Imagelist.txt, any ``...\\Flickr\\`` prefix removed."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            entry = line.strip().replace("\\", "/")
            if not entry:
                continue
            marker = entry.lower().rfind("flickr/")
            if marker >= 0:
                entry = entry[marker + len("flickr/"):]
            out.append(entry)
    if not out:
        raise NusWideFormatError(f"nus-wide: image list {path} is empty")
    return out


def read_label_file(path: Path, n_images: int, list_path: Path) -> np.ndarray:
    """One concept's 0/1 column (uint8, n_images); the count of lines must equal the image list's.

    Vectorised (81 files of 270k lines are read to rank the concepts); a file that is not one 0/1
    a line falls through to a line-by-line pass that names the first bad line.
    """
    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    is_value = (raw == ord("0")) | (raw == ord("1"))
    line_of_value = np.cumsum(raw == ord("\n"))[is_value]
    if (is_value | np.isin(raw, (9, 10, 13, 32))).all() and (np.diff(line_of_value) > 0).all():
        if int(is_value.sum()) != n_images:
            raise NusWideFormatError(f"nus-wide: label file {path} has {int(is_value.sum())} lines but the image list "
                                     f"{list_path} has {n_images} images; both must come from the same release")
        return (raw[is_value] - ord("0")).astype(np.uint8)
    for line_no, line in enumerate(data.splitlines(), start=1):
        tokens = line.split()
        if len(tokens) > 1 or (tokens and tokens[0] not in (b"0", b"1")):
            raise NusWideFormatError(f"nus-wide: label file {path} line {line_no}: expected one 0 or 1, "
                                     f"found {line[:40]!r}")
    raise NusWideFormatError(f"nus-wide: label file {path} is not one 0/1 value a line")


def concept_files(label_dir: Path) -> dict[str, Path]:
    """Concept name -> its ``Labels_<concept>.txt`` (the per-split ``_Train``/``_Test`` files excluded)."""
    found = {}
    for p in label_dir.iterdir():
        m = LABEL_FILE.match(p.name)
        if m and p.is_file() and not SPLIT_SUFFIX.search(m.group(1)):
            found[m.group(1)] = p
    if not found:
        raise FileNotFoundError(f"nus-wide: no Labels_<concept>.txt files in {label_dir}")
    return dict(sorted(found.items()))


def load_nuswide(root: str | Path, concepts: int | Sequence[str] | None = 21, drop_unlabeled: bool = True,
                 image_list: str | Path | None = None, label_dir: str | Path | None = None,
                 image_dir: str | Path | None = None, channels: int = 3,
                 image_size: int | tuple[int, int] | None = (256, 256), skip_corrupt: bool = False) -> FileDataset:
    """NUS-WIDE, multi-label over ``concepts`` (the k most frequent, a list of names, or None for all).

    ``image_size`` defaults to the paper's 256x256 (crops of 224 are taken later); images are
    resized on load. ``drop_unlabeled`` keeps only images with at least one chosen concept.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"nus-wide: {root} is not a folder")
    list_path = Path(image_list) if image_list is not None else _first_existing(
        [root / "ImageList" / "Imagelist.txt", root / "Imagelist.txt", root / "ImageList" / "ImageList.txt"],
        "image list", root)
    labels_at = Path(label_dir) if label_dir is not None else _first_existing(
        [root / "Groundtruth" / "AllLabels", root / "AllLabels", root / "Groundtruth"], "label folder", root)
    images_at = Path(image_dir) if image_dir is not None else next(
        (d for d in (root / "Flickr", root / "images", root / "Images") if d.is_dir()), root)

    entries = read_image_list(list_path)
    files = concept_files(labels_at)
    if concepts is None:
        chosen = list(files)
    elif isinstance(concepts, (int, np.integer)):
        if not 0 < concepts <= len(files):
            raise ValueError(f"nus-wide: concepts={concepts} but {labels_at} holds {len(files)} concept files")
        chosen = None  # decided after counting
    else:
        unknown = [c for c in concepts if c not in files]
        if unknown:
            raise ValueError(f"nus-wide: unknown concept(s) {unknown}; available: {', '.join(files)}")
        chosen = sorted(dict.fromkeys(concepts))

    names = list(files) if chosen is None else chosen
    columns = {c: read_label_file(files[c], len(entries), list_path) for c in names}
    if chosen is None:
        # Most frequent first (ties by name), then back to alphabetical order for the columns.
        counts = {c: int(column.sum()) for c, column in columns.items()}
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        chosen = sorted(ranked[:int(concepts)])  # type: ignore[arg-type]
    labels = np.stack([columns[c] for c in chosen], axis=1)
    del columns

    keep = np.flatnonzero(labels.any(axis=1)) if drop_unlabeled else np.arange(len(entries))
    labels = labels[keep]
    paths = [images_at / entries[i] for i in keep]
    origins = [f"{list_path.name} line {i + 1}" for i in keep]
    if not skip_corrupt:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            shown = ", ".join(str(p) for p in missing[:3])
            raise FileNotFoundError(f"nus-wide: {len(missing)} of {len(paths)} listed images are missing under "
                                    f"{images_at} (e.g. {shown}); pass image_dir= if they live elsewhere, or "
                                    "skip_corrupt=True to skip them")
    return build_file_dataset(paths, labels, name="nus-wide", class_names=chosen, channels=channels,
                              image_size=image_size, skip_corrupt=skip_corrupt, origins=origins, root=images_at)
