"""The write token of ``dnnh serve``: from a file or the environment (light: no torch imported)."""

from __future__ import annotations

import os
from pathlib import Path


def read_token(token_file: str | Path | None = None, environ: dict | None = None) -> str | None:
    """The write token: the first line of ``token_file``, else ``$DNNH_TOKEN``, else None (read-only)."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"token file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {path}: {exc}") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ValueError(f"token file {path} is empty; write a long random token into it")
        return token
    token = environ.get("DNNH_TOKEN", "").strip()
    return token or None
