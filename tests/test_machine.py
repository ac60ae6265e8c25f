"""dnnh.machine's decisions from CPU flags (the flags are made up; nothing here depends on the host)."""

from __future__ import annotations

import pytest

from dnnh import machine


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "popcnt"}, ("fp32",)),                      # an AVX2-only CPU: bf16 is emulated
    ({"avx512f", "avx512_vnni"}, ("fp32",)),              # VNNI speeds int8, not bf16
    ({"avx512f", "avx512_bf16"}, ("fp32", "bf16")),
    ({"amx_bf16", "amx_tile"}, ("fp32", "bf16")),
])
def test_benchmarks_time_bf16_only_where_it_runs_in_hardware(monkeypatch, flags, expected):
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    assert machine.bf16_is_fast() == ("bf16" in expected)
    assert machine.precisions_to_time() == expected
