"""Time to reach a validation MAP, and the table formatter, on hand-made inputs."""

from __future__ import annotations

import pytest

from dnnh.bench import ResultRow, compare_speed, format_table, time_to_reach

FAST = [{"epoch": 1, "seconds": 30.0, "val_map": 0.40}, {"epoch": 2, "seconds": 30.0, "val_map": 0.55},
        {"epoch": 3, "seconds": 30.0, "val_map": 0.60}]
SLOW = [{"epoch": 1, "seconds": 10.0, "val_map": 0.20}, {"epoch": 2, "seconds": 10.0},  # not validated
        {"epoch": 3, "seconds": 10.0, "val_map": 0.35}, {"epoch": 4, "seconds": 10.0, "val_map": 0.50}]


def test_time_to_reach_sums_epoch_seconds_to_the_first_epoch_at_target():
    assert time_to_reach(FAST, 0.40) == {"epoch": 1, "seconds": 30.0}
    assert time_to_reach(FAST, 0.50) == {"epoch": 2, "seconds": 60.0}
    assert time_to_reach(SLOW, 0.30) == {"epoch": 3, "seconds": 30.0}  # epoch 2's time counts, unvalidated
    assert time_to_reach(SLOW, 0.51) is None
    with pytest.raises(ValueError):
        time_to_reach(FAST, float("nan"))


def test_compare_speed_default_target_is_the_lower_best():
    result = compare_speed({"dnnh": FAST, "dnnh-random": SLOW})
    assert result["target_val_map"] == 0.50
    assert result["methods"]["dnnh"] == {"best_val_map": 0.60, "reached": {"epoch": 2, "seconds": 60.0}}
    assert result["methods"]["dnnh-random"]["reached"] == {"epoch": 4, "seconds": 40.0}
    fixed = compare_speed({"dnnh": FAST, "dnnh-random": SLOW}, target=0.58)
    assert fixed["methods"]["dnnh-random"]["reached"] is None
    with pytest.raises(ValueError, match="no validation MAP"):
        compare_speed({"a": [{"seconds": 1.0}]})


def test_format_table_rows_methods_columns_bits():
    rows = [ResultRow("DNNH", 12, 0.5, 0.25, 100.0), ResultRow("LSH", 12, 0.125, 0.0625, 0.5),
            ResultRow("DNNH", 24, 0.75, 0.375, 200.0)]
    assert format_table(rows) == "\n".join([
        "| method | MAP 12 | MAP 24 | P@r2 12 | P@r2 24 | train s 12 | train s 24 |",
        "|---|---|---|---|---|---|---|",
        "| DNNH | 0.5000 | 0.7500 | 0.2500 | 0.3750 | 100.00 | 200.00 |",
        "| LSH | 0.1250 |  | 0.0625 |  | 0.50 |  |",
    ])
