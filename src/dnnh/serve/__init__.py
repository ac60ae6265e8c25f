"""``dnnh serve``: a run's retrieval behind HTTP — a JSON API, a web page, durable adds and deletes.

- :mod:`dnnh.serve.store`: the durable item store (index snapshot + write-ahead log + images); the
  searchable items live in a :class:`dnnh.index.live.LiveIndex`.
- :mod:`dnnh.serve.limits`: what one request may cost (bytes, pixels, decode memory, concurrency).
- :mod:`dnnh.serve.service`: encoder, store and dataset images together, without the web.
- :mod:`dnnh.serve.app`: :func:`create_app`, the FastAPI app (extra ``serve``: fastapi, uvicorn,
  python-multipart), imported on first use so ``import dnnh.serve`` never needs them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_K_MAX", "DEFAULT_MAX_CONCURRENT_UPLOADS", "DEFAULT_MAX_DECODE_MB", "DEFAULT_MAX_MEGAPIXELS",
           "DEFAULT_MAX_UPLOAD_MB", "Service", "Store", "create_app"]

#: Defaults of ``dnnh serve`` (in :mod:`dnnh.serve.limits`, so the command line reads them without
#: importing torch; nothing in the package imports this module back: no import cycle).
from dnnh.serve.limits import (DEFAULT_K_MAX, DEFAULT_MAX_CONCURRENT_UPLOADS, DEFAULT_MAX_DECODE_MB,  # noqa: E402
                               DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB)


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from dnnh.serve.app import create_app

        return create_app
    if name == "Service":
        from dnnh.serve.service import Service

        return Service
    if name == "Store":
        from dnnh.serve.store import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
