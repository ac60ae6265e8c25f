"""What this machine is, for the code whose speed depends on it and for every benchmark's header.

numba compiles the index's kernels for the host CPU (LLVM's ``-mcpu=host``), so the vector
popcount it emits is VPOPCNTQ where the CPU has AVX-512 VPOPCNTDQ, a nibble-lookup popcount
(VPSHUFB) with AVX2, scalar POPCNT or bit arithmetic below that: the same exact results at
different speeds. bf16 autocast runs on hardware with AMX-BF16 or AVX512-BF16
(:data:`NATIVE_BF16_FLAGS`) and is emulated (slowly) elsewhere; AVX512-VNNI speeds up int8.
Benchmarks print :func:`describe` so that every figure says where it was taken: the CPU model,
clock, the flags that matter, the popcount and bf16 paths, threads and the load average, and the
GPU where a caller passes one (:func:`describe`'s ``gpu``; :func:`dnnh.devices.describe_device`
writes that line).

/proc/cpuinfo is read once per process (:func:`cpuinfo`); everything here imports nothing
heavier than the standard library, so the command line may ask it.
"""

from __future__ import annotations

import functools
import os
import platform

#: /proc/cpuinfo flags that set the scan's speed, fastest path first.
POPCOUNT_FLAGS = ("avx512_vpopcntdq", "avx512bw", "avx512f", "avx2", "popcnt")
#: Flags with which bf16 arithmetic runs in hardware (torch's bf16 autocast, the torch-bf16 engine).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: Flags reported in benchmark headers because they make bf16 or int8 arithmetic fast.
BF16_FLAGS = NATIVE_BF16_FLAGS + ("avx512_vnni",)
#: Flags with an int8 dot product that accumulates in 32 bits (VNNI's VPDPBUSD, AMX's tiles).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo (empty where there is none), read once."""
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


def cpu_flags() -> set[str]:
    """The first processor's /proc/cpuinfo flags (empty where there is no /proc/cpuinfo)."""
    return set(cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC ..."), or what the platform says where /proc/cpuinfo has none."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def bf16_is_fast() -> bool:
    """Whether bf16 autocast runs on hardware here: a CPU with AMX-BF16 or AVX512-BF16."""
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def precisions_to_time() -> tuple[str, ...]:
    """The precisions a speed benchmark times by default: fp32, and bf16 only where it runs in hardware
    (an emulated bf16 figure is slower than fp32 and says nothing about a CPU that has bf16)."""
    return ("fp32", "bf16") if bf16_is_fast() else ("fp32",)


def int8_accumulates_exactly() -> bool:
    """Whether u8 x s8 products sum without saturating here: a CPU with VNNI or AMX-INT8.

    Without them (AVX2, AVX-512 before VNNI) onnxruntime's int8 kernels use VPMADDUBSW, whose
    pairwise sums saturate at int16; its documentation advises 7-bit weights (``reduce_range``)
    on those CPUs, which :class:`dnnh.encoder.backends.OnnxRuntimeInt8Backend` follows.
    """
    return any(flag in cpu_flags() for flag in VNNI_FLAGS)


def bf16_path(flags: set[str]) -> str:
    """How bf16 arithmetic runs on a CPU with ``flags``."""
    if "amx_bf16" in flags:
        return "AMX-BF16 tiles"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return "emulated (no AMX-BF16 or AVX512-BF16: bf16 is slower than fp32 here)"


def popcount_path(flags: set[str]) -> str:
    """The popcount LLVM uses for the scan's 8-code vectors, named from the CPU's flags."""
    if "avx512_vpopcntdq" in flags:
        return "AVX-512 VPOPCNTQ (8 x 64-bit popcounts an instruction)"
    if "avx2" in flags:
        return "AVX2 nibble lookup (VPSHUFB; no vector popcount instruction)"
    if "popcnt" in flags:
        return "scalar POPCNT (one 64-bit word an instruction)"
    return "portable bit arithmetic (no POPCNT instruction)"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def load_average() -> tuple[float, ...]:
    """The 1, 5 and 15 minute load averages, rounded (empty where the OS has none)."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        return ()


def summary() -> dict[str, object]:
    """CPU model, clock (MHz, as /proc/cpuinfo reports it), relevant flags, paths, CPUs usable, load."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    mhz = info.get("cpu MHz")
    return {
        "model": cpu_model(),
        "mhz": float(mhz) if mhz else None,
        "flags": [f for f in POPCOUNT_FLAGS + BF16_FLAGS if f in flags],
        "popcount": popcount_path(flags) if flags else f"unknown ({platform.machine()})",
        "bf16": bf16_path(flags) if flags else f"unknown ({platform.machine()})",
        "cpus": usable_cpus(),
        "load": load_average(),
    }


def describe(threads: int | None = None, gpu: str | None = None) -> str:
    """One line for a benchmark's header: model, clock, flags, popcount and bf16 paths, threads, load.

    ``gpu``: the GPU's own line where a figure involves one (``dnnh.devices.describe_device``).
    """
    s = summary()
    clock = f"{s['mhz']:.0f} MHz" if s["mhz"] else "clock unknown"
    used = f"{threads} of {s['cpus']}" if threads is not None else f"{s['cpus']}"
    load = " ".join(f"{x:.2f}" for x in s["load"]) or "n/a"  # type: ignore[union-attr]
    known = " ".join(POPCOUNT_FLAGS + BF16_FLAGS)
    line = (f"CPU {s['model']}, {clock}; flags {' '.join(s['flags']) or 'none of ' + known}; "
            f"scan popcount: {s['popcount']}; bf16: {s['bf16']}; threads {used} CPUs; load average {load}")
    return line + (f"; GPU {gpu}" if gpu else "")


def configure_threads() -> None:
    """Make OpenMP's waiting threads sleep instead of spin, unless the user chose otherwise.

    torch's intra-op threads meet at a barrier after every parallel region. By default a waiting
    thread spins, which costs nothing on an idle machine but, beside other busy processes, makes a
    region whose peer thread was descheduled wait a whole scheduler slice for microseconds of work,
    and the spinning itself steals the slice the peer needs: the digits demo fell 100x at a load of
    6-14 on 2 cores, where its share of the cores fell 3-7x (``benchmarks/contention.py``).
    ``OMP_WAIT_POLICY=PASSIVE`` lets the waiting thread sleep, so a run slows about in proportion to
    its share of the cores. OpenMP reads the variable once, when torch loads it, so this must run
    before ``import torch``; after it, it changes nothing (and says nothing: the library may be
    imported by a program that set its own policy).
    """
    if "torch" not in __import__("sys").modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
