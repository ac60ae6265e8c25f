"""Fetching a published dataset file once, into the user's data folder, checked against its MD5.

Why this shape: a half-written or tampered archive must never sit where a later run would take it
for the real one, so a download goes to a temporary file in the destination folder, is checked
against the publisher's MD5, and only then is renamed into place; a mismatch deletes it.
Files already present are trusted (they may be user-made copies; their parsers check structure).

:func:`fetch` is the only function that touches the network; tests replace it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from dnnh.errors import DataError

USER_AGENT = "dnnh-dataset-loader/0.1"
TIMEOUT_S = 60.0


class ChecksumError(DataError):
    """A downloaded file whose MD5 is not the published one (the file has been deleted)."""


class DownloadError(FileNotFoundError):
    """A dataset file that is not on disk and could not be downloaded; the message says where to put it."""


def default_root(name: str) -> Path:
    """Where a dataset lives when no ``root`` is given: ``$DNNH_DATA/<name>`` or ``~/.cache/dnnh/<name>``."""
    base = os.environ.get("DNNH_DATA")
    return (Path(base) if base else Path.home() / ".cache" / "dnnh") / name


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path) -> None:
    """Copy ``url`` to the file ``dest`` (which exists and is empty). Replaced in tests."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as fh:
        shutil.copyfileobj(response, fh, 1 << 20)


def download(url: str, dest: str | Path, md5: str) -> Path:
    """Download ``url`` to ``dest`` via a temporary file, verify ``md5``, rename into place.

    Raises :class:`ChecksumError` (after deleting the bad file) when the MD5 differs, and lets
    network errors (``urllib.error.URLError``, ``OSError``) propagate for the caller to explain.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetch(url, tmp)
        got = md5_file(tmp)
        if got != md5.lower():
            raise ChecksumError(f"downloaded {url} has MD5 {got}, expected the published {md5}; "
                                f"the file was deleted (a truncated or altered download). Try again, or fetch it "
                                f"by hand into {dest.parent}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def ensure_file(folder: Path, filename: str, url: str, md5: str, allow_download: bool, what: str) -> Path:
    """Return ``folder/filename``, downloading it first when it is missing and downloading is allowed.

    ``what`` names the dataset in messages. A failed download says what was tried and where a
    manually fetched copy should go.
    """
    path = Path(folder) / filename
    if path.is_file():
        return path
    manual = f"download {url} (MD5 {md5}) and put it in {folder}"
    if not allow_download:
        raise DownloadError(f"{what}: {path} not found and download=False; {manual}")
    try:
        return download(url, path, md5)
    except ChecksumError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"{what}: {path} not found and downloading it failed ({exc}); {manual}") from exc
