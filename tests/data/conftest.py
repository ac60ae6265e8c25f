"""Data tests: nothing touches the network.

The one function that downloads is replaced by one that fails; the download tests replace it
again with a local copy. The builders of fixture files are in tests/support/builders.py.
"""

from __future__ import annotations

import pytest

import dnnh.data.download as download_mod


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, dest):
        raise AssertionError(f"a test tried to download {url}")
    monkeypatch.setattr(download_mod, "fetch", refuse)
