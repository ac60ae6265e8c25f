"""The write token of ``dnnh serve``: from a file or the environment (light: no torch imported)."""

from __future__ import annotations

import os
from pathlib import Path

#: The longest token accepted. A client sends it in one header line; HTTP servers and proxies cap a
#: line at 8 KB (nginx) and uvicorn's h11 all headers at 16 KB, and reset a connection over it, so a
#: longer token would start a server no one could write to. A random token needs 43 (token_urlsafe()).
MAX_TOKEN_CHARS = 4096
#: The most of a token file read: its first non-blank line must lie within it.
_READ_BYTES = 64 * 1024


def read_token(token_file: str | Path | None = None, environ: dict | None = None) -> str | None:
    """The write token: the first line of ``token_file``, else ``$DNNH_TOKEN``, else None (read-only)."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file)
        try:
            with path.open("rb") as f:  # a bounded read: a huge file is refused, never loaded whole
                head, more = f.read(_READ_BYTES), f.read(1) != b""
            lines = head.lstrip().split(b"\n", 1)
            if more and len(lines) == 1:  # the first line runs past what was read
                raise ValueError(f"token file {path} has no whole line in its first {_READ_BYTES:,} bytes; a token "
                                 f"may have at most {MAX_TOKEN_CHARS:,} characters (an HTTP header line carries no more)")
            token = lines[0].decode().strip()
        except FileNotFoundError:
            raise FileNotFoundError(f"token file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {path}: {exc}") from None
        if not token:
            raise ValueError(f"token file {path} is empty; write a long random token into it")
        return check_token(token, f"the token in {path}")
    token = environ.get("DNNH_TOKEN", "").strip()
    return check_token(token, "$DNNH_TOKEN") if token else None


def check_token(token: str, where: str) -> str:
    """``token`` if a client can send it: printable ASCII without spaces, at most :data:`MAX_TOKEN_CHARS`
    (an HTTP header carries nothing else reliably, so a server started with another token could never
    be written to)."""
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"{where} has {len(token):,} characters; a token may have at most {MAX_TOKEN_CHARS:,} "
                         "(an HTTP header line carries no more; python -c 'import secrets; "
                         "print(secrets.token_urlsafe())' makes a good one)")
    bad = next((ch for ch in token if not ("!" <= ch <= "~")), None)
    if bad is not None:
        raise ValueError(f"{where} holds {('a space' if bad == ' ' else repr(bad))}; a token must be printable "
                         "ASCII without spaces (for example: python -c 'import secrets; print(secrets.token_urlsafe())')")
    return token
