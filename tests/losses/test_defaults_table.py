"""docs/METHOD.md §11 states each later loss's default against its reference's: the table's defaults are the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dnnh.config import TrainConfig

METHOD = Path(__file__).resolve().parents[2] / "docs" / "METHOD.md"


def defaults_table() -> dict[str, str]:
    """Field name -> the 'dnnh default' cell of §11's table."""
    section = METHOD.read_text().split("## 11.", 1)[1]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "`" in line]
    return {re.search(r"`(\w+)`", cells[0]).group(1): cells[1].strip() for cells in rows}


@pytest.mark.parametrize("field", ["eta", "alpha", "dtsh_alpha", "hashnet_alpha", "lam"])
def test_the_table_states_the_codes_default(field):
    cell = defaults_table()[field]
    assert float(cell.split()[0]) == getattr(TrainConfig(), field)
