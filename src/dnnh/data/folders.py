"""A user's own images: a folder of class subfolders, or a manifest (CSV, JSONL, or a DeepHash-style list).

Both give a :class:`FileDataset`: paths and labels are read up front (a split needs every label),
pixels are decoded only when a batch asks for them, so a collection far larger than memory streams.

- Folder: ``root/<class>/**/<image>``; classes are the subfolder names in sorted order, files
  are sorted, non-image files (by extension) are ignored, an empty class folder is an error.
  Symbolic links are followed with their targets resolved: each real file counts once (a second
  link to it within its class is dropped with a :class:`DataWarning`), one file reached from two
  classes is an error naming both paths, and a directory link back to a folder it sits in (a loop
  such as ``ln -s .. root/cat/up``) is skipped with a warning, so a loop can neither grow the set
  nor relabel other classes' images. A link that leads out of ``root`` is refused with a
  ValueError naming it, unless ``allow_outside_paths=True``.
- CSV: ``path,labels`` rows (a header row is recognised by cells such as ``path``, ``label``); a
  labels cell may hold several labels separated by ``|`` or ``;``, and further columns count as
  further labels. JSONL: one object a line with ``path`` and ``labels`` (a list, or one value) or
  ``label``. TXT: DeepHash-pytorch's list format, ``path 0 1 0 ...`` (a 0/1 vector a line).
  Relative paths resolve against the manifest's folder (or ``root`` when given). A path that
  leads out of that folder (absolute elsewhere, ``..``, or through a symlink) is refused with a
  :class:`ManifestError` naming the line, unless ``allow_outside_paths=True``: a manifest from
  someone else must not make training read any file on the machine.
- A CSV header may name its columns in any order (``label,path`` works); without a header the
  order is ``path,labels``. A row repeating an earlier row's image (same real file) with the same
  labels is merged with a :class:`DataWarning`; with other labels it is an error naming both lines
  (a duplicate would otherwise find itself as a query and inflate MAP).
- Labels are names: they are numbered in sorted order (numeric order when all are integers) and
  the names kept as ``class_names``. A set where every item has exactly one label is single-label
  (class ids); otherwise multi-label (0/1 matrix). ``multilabel=True`` forces the matrix.

Corrupt files: by default nothing is decoded up front (a 200k-image manifest loads in a second)
and a bad file raises :class:`CorruptImageError` naming it when a batch reaches it. With
``skip_corrupt=True`` every file is decoded once at load time and the unusable ones (missing or
undecodable) are dropped and listed in ``dataset.skipped`` / ``dataset.skip_reasons``: checking up
front keeps indices, labels and splits stable during training, at the cost of one decode pass.
``dataset.verify()`` is the cheap alternative: a header check of every file (no decoding) that
finds missing, unidentifiable and checksum-broken files in any part of a split before training.

Warnings (merged rows, skipped files, link loops) are :class:`dnnh.data.DataWarning`, one line
each, attributed to the caller of ``load_dataset``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from dnnh.data.dataset import FileDataset, warn_data
from dnnh.data.images import check_images
from dnnh.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm"})
PATH_KEYS = ("path", "file", "filename", "image", "image_path", "filepath", "img")
LABEL_KEYS = ("labels", "label", "tags", "classes", "class", "category", "categories")
LABEL_SEPARATORS = re.compile(r"[|;]")


class ManifestError(DataError):
    """A manifest row that cannot be used; the message names the file and line."""


def build_file_dataset(paths: Sequence[Path], labels: np.ndarray, *, name: str, class_names: list[str] | None,
                       channels: int = 3, image_size: int | tuple[int, int] | None = None,
                       skip_corrupt: bool = False, origins: Sequence[str] | None = None,
                       root: str | Path | None = None) -> FileDataset:
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
            warn_data(f"{name}: skipped {len(skipped)} of {len(paths)} images that are missing or cannot be "
                      f"decoded (listed in dataset.skipped), e.g. {first}: {reasons[first]}")
            paths = [paths[i] for i in keep]
            labels = labels[keep]
    return FileDataset(paths=paths, labels=labels, name=name, class_names=class_names, channels=channels,
                       image_size=image_size, skipped=skipped, skip_reasons=reasons, root=root)


def _is_image(path: Path, extensions: frozenset[str]) -> bool:
    return path.suffix.lower() in extensions and not path.name.startswith(".")


def _inside(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or below it (both already resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _outside_error(root: Path, link: str, target: str) -> ValueError:
    return ValueError(f"{root}: {link} is a symbolic link to {target}, outside the image folder; links out of "
                      "the folder are not followed unless allow_outside_paths=True (--allow-outside-paths)")


class _ClassWalker:
    """Lists one class folder's image files with links followed, loops cut and outside links refused."""

    def __init__(self, root: Path, exts: frozenset[str], allow_outside: bool) -> None:
        self.root, self.exts, self.allow_outside = root, exts, allow_outside
        self.root_real = os.path.realpath(root)
        self.loops: list[str] = []

    def check_link(self, path: str) -> str:
        target = os.path.realpath(path)
        if not self.allow_outside and not _inside(target, self.root_real):
            raise _outside_error(self.root, path, target)
        return target

    def files(self, class_dir: Path) -> list[tuple[Path, tuple[int, int] | None]]:
        out: list[tuple[Path, tuple[int, int] | None]] = []
        self._visit(class_dir, os.path.realpath(class_dir), out)
        return out

    def _visit(self, folder: Path, folder_real: str, out: list[tuple[Path, tuple[int, int] | None]]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise ValueError(f"{self.root}: cannot list {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            link = entry.is_symlink()
            real = self.check_link(entry.path) if link else None
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                real = real or os.path.realpath(entry.path)
                if _inside(folder_real, real):  # a link to this folder or one above it: a loop
                    self.loops.append(f"{entry.path} -> {real}")
                    continue
                self._visit(Path(entry.path), real, out)
            elif _is_image(Path(entry.name), self.exts):
                try:
                    st = os.stat(entry.path)
                    identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
                except OSError:
                    identity = None  # a dangling link: reported as missing like any unreadable file
                out.append((Path(entry.path), identity))


def load_image_folder(root: str | Path, channels: int = 3, image_size: int | tuple[int, int] | None = None,
                      skip_corrupt: bool = False, extensions: Sequence[str] | None = None,
                      allow_outside_paths: bool = False) -> FileDataset:
    """A folder whose subfolders are the classes; every image below a class folder belongs to it.

    Symbolic links: see the module docstring (each real file once, loops skipped with a warning,
    a file in two classes an error, links out of ``root`` a ValueError unless ``allow_outside_paths``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    exts = frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions) if extensions \
        else IMAGE_EXTENSIONS
    walker = _ClassWalker(root, exts, allow_outside_paths)
    class_dirs = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        real = walker.check_link(str(d)) if d.is_symlink() else os.path.realpath(d)
        if _inside(walker.root_real, real):
            walker.loops.append(f"{d} -> {real}")
            continue
        class_dirs.append(d)
    if not class_dirs:
        loose = sum(1 for p in root.iterdir() if p.is_file() and _is_image(p, exts))
        raise ValueError(f"{root}: expected one subfolder per class holding its images, found no subfolders"
                         + (f" ({loose} images directly in the folder; move them into class folders)" if loose else ""))
    paths: list[Path] = []
    labels: list[int] = []
    owner: dict[tuple[int, int], tuple[str, Path]] = {}
    repeats: list[str] = []
    for class_id, class_dir in enumerate(class_dirs):
        files = sorted(walker.files(class_dir), key=lambda f: f[0].relative_to(class_dir).as_posix())
        if not files:
            raise ValueError(f"{root}: class folder {class_dir.name!r} holds no image files "
                             f"(looked for {', '.join(sorted(exts))}); remove it or add its images")
        for path, identity in files:
            if identity is not None and identity in owner:
                first_class, first = owner[identity]
                if first_class != class_dir.name:
                    raise ValueError(f"{root}: {first} (class {first_class!r}) and {path} (class {class_dir.name!r}) "
                                     "are the same file, reached through links; a class folder gives each image "
                                     "one class (for several labels use a manifest)")
                repeats.append(f"{path} (same file as {first})")
                continue
            if identity is not None:
                owner[identity] = (class_dir.name, path)
            paths.append(path)
            labels.append(class_id)
    if walker.loops:
        warn_data(f"{root}: skipped {len(walker.loops)} symbolic link(s) to a folder above them (a loop), "
                  f"e.g. {walker.loops[0]}")
    if repeats:
        warn_data(f"{root}: {len(repeats)} file(s) reached twice through links were counted once, e.g. {repeats[0]}")
    return build_file_dataset(paths, np.asarray(labels, dtype=np.int64), name=root.name or "images",
                              class_names=[d.name for d in class_dirs], channels=channels,
                              image_size=image_size, skip_corrupt=skip_corrupt, root=root)


def _split_labels(cells: Sequence[str]) -> list[str]:
    return [tok.strip() for cell in cells for tok in LABEL_SEPARATORS.split(cell) if tok.strip()]


def _read_csv(path: Path, delimiter: str = ",") -> list[tuple[int, str, list[str]]]:
    rows: list[tuple[int, str, list[str]]] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        path_col, label_cols = 0, None
        first = True
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            header = [c.strip().lower() for c in row]
            if first and any(h in PATH_KEYS or h in LABEL_KEYS for h in header):
                # A header, its columns in any order (``label,path`` as well as ``path,label``).
                path_cols = [i for i, h in enumerate(header) if h in PATH_KEYS][:1]
                label_cols = [i for i, h in enumerate(header) if h in LABEL_KEYS][:1]
                if not path_cols or not label_cols:
                    what = "path" if not path_cols else "labels"
                    keys = PATH_KEYS if not path_cols else LABEL_KEYS
                    raise ManifestError(f"{path} line {reader.line_num}: header {row} has no {what} column "
                                        f"(expected one of {', '.join(keys)}); without a header the columns "
                                        "are path, then labels")
                path_col = path_cols[0]
                first = False
                continue
            first = False
            if label_cols is not None and max(path_col, label_cols[0]) >= len(row):
                raise ManifestError(f"{path} line {reader.line_num}: {len(row)} columns, the header has more")
            cells = row[1:] if label_cols is None else [row[i] for i in label_cols]
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


def _real_paths(paths: Sequence[str]) -> list[str]:
    """``os.path.realpath`` of each path, resolving each folder once (a manifest lists many per folder)."""
    folders: dict[str, str] = {}
    out = []
    for p in paths:
        folder, name = os.path.split(p)
        real_folder = folders.get(folder)
        if real_folder is None:
            real_folder = folders[folder] = os.path.realpath(folder)
        candidate = os.path.join(real_folder, name)
        out.append(os.path.realpath(candidate) if name in ("", ".", "..") or os.path.islink(candidate) else candidate)
    return out


def _check_rows(path: Path, rows: list[tuple[int, str, list[str]]], base: Path,
                allow_outside_paths: bool) -> tuple[list[tuple[int, str, list[str]]], list[Path]]:
    """Rows with duplicates merged, and their paths; outside paths and conflicting duplicates refused."""
    listed = [p if os.path.isabs(p) else os.path.join(base, p) for _, p, _ in rows]
    real = _real_paths(listed)
    if not allow_outside_paths:
        base_real = os.path.realpath(base)
        outside = [i for i, r in enumerate(real) if not _inside(r, base_real)]
        if outside:
            line, rel, _ = rows[outside[0]]
            more = f" ({len(outside) - 1} more rows do too)" if len(outside) > 1 else ""
            raise ManifestError(f"{path} line {line}: image {rel!r} is outside the manifest's folder {base} "
                                f"(it resolves to {real[outside[0]]}){more}; paths that leave it are refused "
                                "unless allow_outside_paths=True (--allow-outside-paths)")
    first_row: dict[str, int] = {}
    keep: list[int] = []
    merged: list[tuple[int, int]] = []
    for i, r in enumerate(real):
        j = first_row.setdefault(r, i)
        if j == i:
            keep.append(i)
        elif sorted(set(rows[i][2])) == sorted(set(rows[j][2])):
            merged.append((rows[i][0], rows[j][0]))
        else:
            raise ManifestError(f"{path} line {rows[i][0]}: image {rows[i][1]!r} is listed again with labels "
                                f"{rows[i][2]}, but line {rows[j][0]} gave it {rows[j][2]}; list each image once")
    if merged:
        warn_data(f"{path}: {len(merged)} duplicated row(s) merged (same image, same labels), "
                  f"e.g. line {merged[0][0]} repeats line {merged[0][1]}")
    return [rows[i] for i in keep], [Path(listed[i]) for i in keep]


def load_manifest(path: str | Path, root: str | Path | None = None, channels: int = 3,
                  image_size: int | tuple[int, int] | None = None, skip_corrupt: bool = False,
                  multilabel: bool | None = None, allow_outside_paths: bool = False) -> FileDataset:
    """Images and labels listed in a ``.csv``, ``.jsonl`` or ``.txt`` manifest (format by extension).

    Rows naming files outside the manifest's folder (or ``root``) are refused unless
    ``allow_outside_paths``; duplicate rows are merged or refused (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    suffix = path.suffix.lower()
    width = 0
    try:
        if suffix in (".csv", ".tsv"):
            rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
        elif suffix in (".jsonl", ".ndjson"):
            rows = _read_jsonl(path)
        elif suffix in (".txt", ".list"):
            rows, width = _read_list(path)
        else:
            raise ValueError(f"manifest {path}: unknown format {suffix!r}; expected .csv, .jsonl or .txt")
    except UnicodeDecodeError:
        raise ManifestError(f"cannot read manifest {path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    if not rows:
        raise ManifestError(f"manifest {path} lists no images")
    base = Path(root) if root is not None else path.parent
    rows, paths = _check_rows(path, rows, base, allow_outside_paths)
    names = _sort_names({lab for _, _, labs in rows for lab in labs}) if not width else [str(j) for j in range(width)]
    counts = [len(labs) for _, _, labs in rows]
    if multilabel is None:
        multilabel = any(c > 1 for c in counts)
    if not multilabel:  # single-label: every row needs its one label (multi-label rows may have none)
        bad = next((r for r, c in zip(rows, counts) if c != 1), None)
        if bad is not None:
            found = f"{len(bad[2])} labels {bad[2]}" if bad[2] else "no label"
            raise ManifestError(f"{path} line {bad[0]}: {found}; every row of a single-label manifest needs "
                                "exactly one label (a manifest is multi-label when some row has several)")
    index = {n: j for j, n in enumerate(names)}
    if multilabel:
        labels = np.zeros((len(rows), len(names)), dtype=np.uint8)
        for r, (_, _, labs) in enumerate(rows):
            labels[r, [index[lab] for lab in labs]] = 1
    else:
        labels = np.asarray([index[labs[0]] for _, _, labs in rows], dtype=np.int64)
    origins = [f"{path.name} line {line}" for line, _, _ in rows]
    if not skip_corrupt:
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            line, rel, labs = rows[missing[0]]
            more = f" ({len(missing) - 1} more rows name missing files)" if len(missing) > 1 else ""
            swapped = bool(labs) and suffix in (".csv", ".tsv") and (base / labs[0]).is_file()
            hint = ("; the row looks like label,path: without a header the path comes first (add a header "
                    "such as 'label,path' to use another order)") if swapped else ""
            raise ManifestError(f"{path} line {line}: image {rel!r} not found (looked for {paths[missing[0]]})"
                                f"{more}{hint}")
    return build_file_dataset(paths, labels, name=path.stem, class_names=names, channels=channels,
                              image_size=image_size, skip_corrupt=skip_corrupt, origins=origins, root=base)
