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


def _policy_after(code: str, env_policy: str | None) -> str:
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run([sys.executable, "-c", code + "\nimport os; print(os.environ.get('OMP_WAIT_POLICY', ''))"],
                         capture_output=True, text=True, env=env, check=True)
    return (out.stdout.strip().splitlines() or [""])[-1]


def test_configure_threads_makes_openmp_wait_passively_before_torch_loads():
    code = "from dnnh.machine import configure_threads; configure_threads()"
    assert _policy_after(code, None) == "PASSIVE"
    assert _policy_after(code, "ACTIVE") == "ACTIVE"  # the user's choice is kept
    # after torch has loaded OpenMP the variable would change nothing, so it is left alone
    assert _policy_after("import torch\n" + code, None) == ""


def test_the_cli_configures_threads_before_a_command_runs(monkeypatch, tmp_path):
    from dnnh.cli import main as cli_main
    calls = []
    monkeypatch.setattr(cli_main, "configure_threads", lambda: calls.append(True))
    assert cli_main.main(["eval", "--run", str(tmp_path / "no-such-run")]) != 0  # refused, after the set-up
    assert calls == [True]
