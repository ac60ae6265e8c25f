"""What the service's tests share: a bearer token and FastAPI's test client."""

from __future__ import annotations

import warnings
from typing import Any

#: The token the service's tests configure (writes need ``Authorization: Bearer TOKEN``).
TOKEN = "test-token-0123456789abcdef"


def make_client(app: Any, **kwargs: Any) -> Any:
    """FastAPI's TestClient, imported without the deprecation chatter of this starlette."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app, **kwargs)
