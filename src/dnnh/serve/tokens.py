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
        return check_token(token, f"the token in {path}")
    token = environ.get("DNNH_TOKEN", "").strip()
    return check_token(token, "$DNNH_TOKEN") if token else None


def check_token(token: str, where: str) -> str:
    """``token`` if a client can send it: printable ASCII without spaces (an HTTP header carries
    nothing else reliably, so a server started with another token could never be written to)."""
    bad = next((ch for ch in token if not ("!" <= ch <= "~")), None)
    if bad is not None:
        raise ValueError(f"{where} holds {('a space' if bad == ' ' else repr(bad))}; a token must be printable "
                         "ASCII without spaces (for example: python -c 'import secrets; print(secrets.token_urlsafe())')")
    return token
