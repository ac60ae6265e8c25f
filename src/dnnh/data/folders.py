"""A user's own images: a folder of class subfolders, or a manifest (CSV, JSONL, or a DeepHash-style list).

Both give a :class:`FileDataset`: paths and labels are read up front (a split needs every label),
pixels are decoded only when a batch asks for them, so a collection far larger than memory streams.

- Folder: ``root/<class>/**/<image>``; classes are the subfolder names in sorted order, files
  are sorted, non-image files (by extension) are ignored, an empty class folder is an error.
- CSV: ``path,labels`` rows (a header row is recognised by a first cell such as ``path``); a
  labels cell may hold several labels separated by ``|`` or ``;``, and further columns count as
  further labels. JSONL: one object a line with ``path`` and ``labels`` (a list, or one value) or
  ``label``. TXT: DeepHash-pytorch's list format, ``path 0 1 0 ...`` (a 0/1 vector a line).
  Relative paths resolve against the manifest's folder (or ``root`` when given).
- Labels are names: they are numbered in sorted order (numeric order when all are integers) and
  the names kept as ``class_names``. A set where every item has exactly one label is single-label
  (class ids); otherwise multi-label (0/1 matrix). ``multilabel=True`` forces the matrix.

Corrupt files: by default nothing is decoded up front (a 200k-image manifest loads in a second)
and a bad file raises :class:`CorruptImageError` naming it when a batch reaches it. With
``skip_corrupt=True`` every file is decoded once at load time and the unusable ones (missing or
undecodable) are dropped and listed in ``dataset.skipped`` / ``dataset.skip_reasons``: checking up
front keeps indices, labels and splits stable during training, at the cost of one decode pass.
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from dnnh.data.dataset import FileDataset
from dnnh.data.images import check_images

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm"})
PATH_KEYS = ("path", "file", "filename", "image", "image_path", "filepath", "img")
LABEL_KEYS = ("labels", "label", "tags", "classes", "class", "category", "categories")
LABEL_SEPARATORS = re.compile(r"[|;]")


class ManifestError(ValueError):
    """A manifest row that cannot be used; the message names the file and line."""


def build_file_dataset(paths: Sequence[Path], labels: np.ndarray, *, name: str, class_names: list[str] | None,
                       channels: int = 3, image_size: int | tuple[int, int] | None = None,
                       skip_corrupt: bool = False, origins: Sequence[str] | None = None) -> FileDataset:
    """The last step of every file loader; with ``skip_corrupt`` decodes each file and drops the bad ones.

    ``origins`` (e.g. "manifest.csv line 7") is added to each skip reason so a user can find the row.
    """
    paths = [Path(p) for p in paths]
    labels = np.asarray(labels)
    skipped: list[str] = []
    reasons: dict[str, str] = {}
    if skip_corrupt and paths:
        problems = check_images(paths)
        keep = [i for i, problem in enumerate(problems) if problem is None]
        for i, problem in enumerate(problems):
            if problem is not None:
                skipped.append(str(paths[i]))
                reasons[str(paths[i])] = problem + (f" ({origins[i]})" if origins else "")
        if not keep:
            first = skipped[0]
            raise ValueError(f"{name}: none of the {len(paths)} images could be read (first: {first}: {reasons[first]})")
        if skipped:
            first = skipped[0]
            warnings.warn(f"{name}: skipped {len(skipped)} of {len(paths)} images that are missing or cannot be "
                          f"decoded (listed in dataset.skipped), e.g. {first}: {reasons[first]}", stacklevel=3)
            paths = [paths[i] for i in keep]
            labels = labels[keep]
    return FileDataset(paths=paths, labels=labels, name=name, class_names=class_names, channels=channels,
                       image_size=image_size, skipped=skipped, skip_reasons=reasons)


def _is_image(path: Path, extensions: frozenset[str]) -> bool:
    return path.suffix.lower() in extensions and not path.name.startswith(".")


def load_image_folder(root: str | Path, channels: int = 3, image_size: int | tuple[int, int] | None = None,
                      skip_corrupt: bool = False, extensions: Sequence[str] | None = None) -> FileDataset:
    """A folder whose subfolders are the classes; every image below a class folder belongs to it."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    exts = frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions) if extensions \
        else IMAGE_EXTENSIONS
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        loose = sum(1 for p in root.iterdir() if p.is_file() and _is_image(p, exts))
        raise ValueError(f"{root}: expected one subfolder per class holding its images, found no subfolders"
                         + (f" ({loose} images directly in the folder; move them into class folders)" if loose else ""))
    paths: list[Path] = []
    labels: list[int] = []
    for class_id, class_dir in enumerate(class_dirs):
        files = sorted((Path(dirpath) / f for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True)
                        for f in filenames), key=lambda p: p.relative_to(class_dir).as_posix())
        files = [f for f in files if _is_image(f, exts) and not any(part.startswith(".") for part in
                                                                    f.relative_to(class_dir).parts)]
        if not files:
            raise ValueError(f"{root}: class folder {class_dir.name!r} holds no image files "
                             f"(looked for {', '.join(sorted(exts))}); remove it or add its images")
        paths.extend(files)
        labels.extend([class_id] * len(files))
    return build_file_dataset(paths, np.asarray(labels, dtype=np.int64), name=root.name or "images",
                              class_names=[d.name for d in class_dirs], channels=channels,
                              image_size=image_size, skip_corrupt=skip_corrupt)


def _split_labels(cells: Sequence[str]) -> list[str]:
    return [tok.strip() for cell in cells for tok in LABEL_SEPARATORS.split(cell) if tok.strip()]


def _read_csv(path: Path, delimiter: str = ",") -> list[tuple[int, str, list[str]]]:
    rows: list[tuple[int, str, list[str]]] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        path_col, label_cols = 0, None
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if not rows and path_col == 0 and label_cols is None and row[0].strip().lower() in PATH_KEYS:
                header = [c.strip().lower() for c in row]
                label_cols = [i for i, h in enumerate(header) if h in LABEL_KEYS][:1]
                if not label_cols:
                    raise ManifestError(f"{path} line {reader.line_num}: header {row} has no labels column "
                                        f"(expected one of {', '.join(LABEL_KEYS)})")
                path_col = header.index(row[0].strip().lower())
                continue
            if label_cols is None:
                cells = row[1:]
            elif max(label_cols) < len(row):
                cells = [row[i] for i in label_cols]
            else:
                raise ManifestError(f"{path} line {reader.line_num}: {len(row)} columns, the header has more")
            rows.append((reader.line_num, row[path_col].strip(), _split_labels(cells)))
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, str, list[str]]]:
    rows: list[tuple[int, str, list[str]]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ManifestError(f"{path} line {line_no}: expected an object with path and labels, "
                                    f"found {type(obj).__name__}")
            path_key = next((k for k in PATH_KEYS if k in obj), None)
            label_key = next((k for k in LABEL_KEYS if k in obj), None)
            if path_key is None or label_key is None:
                raise ManifestError(f"{path} line {line_no}: expected keys 'path' and 'labels' (or 'label'), "
                                    f"found {sorted(obj)}")
            value = obj[label_key]
            values = value if isinstance(value, list) else ([] if value is None else [value])
            rows.append((line_no, str(obj[path_key]), [str(v).strip() for v in values if str(v).strip()]))
    return rows


def _read_list(path: Path) -> tuple[list[tuple[int, str, list[str]]], int]:
    """DeepHash-pytorch's ``path 0 1 0 ...`` lines; labels come back as the names of the 1 columns."""
    rows: list[tuple[int, str, list[str]]] = []
    width = None
    with open(path, encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            vector = parts[1:]
            if width is None:
                width = len(vector)
            if len(vector) != width or any(v not in ("0", "1") for v in vector):
                raise ManifestError(f"{path} line {line_no}: expected a path then {width} values of 0 or 1, "
                                    f"found {len(vector)} values {vector[:5]}")
            rows.append((line_no, parts[0], [str(j) for j, v in enumerate(vector) if v == "1"]))
    return rows, int(width or 0)


def _sort_names(names: set[str]) -> list[str]:
    if names and all(re.fullmatch(r"[+-]?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def load_manifest(path: str | Path, root: str | Path | None = None, channels: int = 3,
                  image_size: int | tuple[int, int] | None = None, skip_corrupt: bool = False,
                  multilabel: bool | None = None) -> FileDataset:
    """Images and labels listed in a ``.csv``, ``.jsonl`` or ``.txt`` manifest (format by extension)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    suffix = path.suffix.lower()
    width = 0
    if suffix in (".csv", ".tsv"):
        rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    elif suffix in (".txt", ".list"):
        rows, width = _read_list(path)
    else:
        raise ValueError(f"manifest {path}: unknown format {suffix!r}; expected .csv, .jsonl or .txt")
    if not rows:
        raise ManifestError(f"manifest {path} lists no images")
    base = Path(root) if root is not None else path.parent
    names = _sort_names({lab for _, _, labs in rows for lab in labs}) if not width else [str(j) for j in range(width)]
    counts = [len(labs) for _, _, labs in rows]
    if multilabel is None:
        multilabel = any(c > 1 for c in counts)
    if not multilabel:  # single-label: every row needs its one label (multi-label rows may have none)
        bad = next((r for r, c in zip(rows, counts) if c != 1), None)
        if bad is not None:
            found = f"{len(bad[2])} labels {bad[2]}" if bad[2] else "no label"
            raise ManifestError(f"{path} line {bad[0]}: {found}; a single-label manifest needs exactly one "
                                "(pass multilabel=True for multi-label data)")
    index = {n: j for j, n in enumerate(names)}
    if multilabel:
        labels = np.zeros((len(rows), len(names)), dtype=np.uint8)
        for r, (_, _, labs) in enumerate(rows):
            labels[r, [index[lab] for lab in labs]] = 1
    else:
        labels = np.asarray([index[labs[0]] for _, _, labs in rows], dtype=np.int64)
    paths = [Path(p) if os.path.isabs(p) else base / p for _, p, _ in rows]
    origins = [f"{path.name} line {line}" for line, _, _ in rows]
    if not skip_corrupt:
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            line, rel, _ = rows[missing[0]]
            more = f" ({len(missing) - 1} more rows name missing files)" if len(missing) > 1 else ""
            raise ManifestError(f"{path} line {line}: image {rel!r} not found (looked for {paths[missing[0]]}){more}")
    return build_file_dataset(paths, labels, name=path.stem, class_names=names, channels=channels,
                              image_size=image_size, skip_corrupt=skip_corrupt, origins=origins)
