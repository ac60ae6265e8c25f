"""What this machine is, for the code whose speed depends on it and for every benchmark's header.

numba compiles the index's kernels for the host CPU (LLVM's ``-mcpu=host``), so the vector
popcount it emits is VPOPCNTQ where the CPU has AVX-512 VPOPCNTDQ, a nibble-lookup popcount
(VPSHUFB) with AVX2, scalar POPCNT or bit arithmetic below that: the same exact results at
different speeds. bf16 autocast runs on hardware with AMX-BF16 or AVX512-BF16 and is emulated
(slowly) elsewhere. Benchmarks print :func:`describe` so that every figure says where it was taken:
the CPU model, clock, the flags that matter, threads and the load average.
"""

from __future__ import annotations

import os
import platform

#: /proc/cpuinfo flags that set the scan's speed, fastest path first.
POPCOUNT_FLAGS = ("avx512_vpopcntdq", "avx512bw", "avx512f", "avx2", "popcnt")
#: /proc/cpuinfo flags that make bf16 (and int8) arithmetic fast.
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni")


def cpu_flags() -> set[str]:
    """The first processor's /proc/cpuinfo flags (empty where there is no /proc/cpuinfo)."""
    return set(_cpuinfo().get("flags", "").split())


def bf16_is_fast() -> bool:
    """Whether bf16 autocast runs on hardware here: a CPU with AMX-BF16 or AVX512-BF16."""
    flags = cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def popcount_path(flags: set[str]) -> str:
    """The popcount LLVM uses for the scan's 8-code vectors, named from the CPU's flags."""
    if "avx512_vpopcntdq" in flags:
        return "AVX-512 VPOPCNTQ (8 x 64-bit popcounts an instruction)"
    if "avx2" in flags:
        return "AVX2 nibble lookup (VPSHUFB; no vector popcount instruction)"
    if "popcnt" in flags:
        return "scalar POPCNT (one 64-bit word an instruction)"
    return "portable bit arithmetic (no POPCNT instruction)"


def summary() -> dict[str, object]:
    """CPU model, clock (MHz, as /proc/cpuinfo reports it), relevant flags, CPUs usable, load."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        load = ()
    mhz = info.get("cpu MHz")
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "mhz": float(mhz) if mhz else None,
        "flags": [f for f in POPCOUNT_FLAGS + BF16_FLAGS if f in flags],
        "popcount": popcount_path(flags) if flags else f"unknown ({platform.machine()})",
        "cpus": usable,
        "load": load,
    }


def describe(threads: int | None = None) -> str:
    """One line for a benchmark's header: model, clock, flags, popcount path, threads, load average."""
    s = summary()
    clock = f"{s['mhz']:.0f} MHz" if s["mhz"] else "clock unknown"
    used = f"{threads} of {s['cpus']}" if threads is not None else f"{s['cpus']}"
    load = " ".join(f"{x:.2f}" for x in s["load"]) or "n/a"  # type: ignore[union-attr]
    known = " ".join(POPCOUNT_FLAGS + BF16_FLAGS)
    return (f"CPU {s['model']}, {clock}; flags {' '.join(s['flags']) or 'none of ' + known}; "
            f"scan popcount: {s['popcount']}; threads {used} CPUs; load average {load}")
