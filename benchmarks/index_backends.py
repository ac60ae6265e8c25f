"""HammingIndex against MilvusIndex (Milvus Lite), in the same run, on the same random codes.

For each backend: build time (add everything; HammingIndex's grouping included), k-NN latency
(``--k`` 10 for ``--nq`` 100 queries: half are stored codes with one bit flipped, half random),
radius-``--radius`` (2, inclusive) latency for the same queries, and resident memory, each with its ratio against HammingIndex. Latencies are the median
of ``--repeats`` runs after one warm-up, the two backends alternating so that load from other
processes hits both alike. Answers are checked: k-NN distances and range-search lims and distances
must equal HammingIndex's.

Memory: HammingIndex lives in this process, so its figure is the growth of this process's RSS over
the build (next to ``memory_usage()``); Milvus Lite runs as a child process (the ``milvus``
binary), so its figure is that process's RSS growth over the build (its RSS with an empty
collection is printed too). Milvus Lite on one machine is expected to be slower: the point of the
backend is that the same contract runs on a Milvus server or cluster.

    .venv-test/bin/python benchmarks/index_backends.py            # 1,000,000 random 64-bit codes
    .venv-test/bin/python benchmarks/index_backends.py --n 200000

Needs the extra: pip install 'dnnh[milvus]'.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

THREADS_DEFAULT = "2"
for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS_DEFAULT)

import numpy as np  # noqa: E402

from dnnh import machine  # noqa: E402
from dnnh.index import HammingIndex, MilvusIndex  # noqa: E402

FLAGS = ("popcnt", "sse4_2", "avx2", "bmi2", "avx512f", "avx512bw", "avx512_vpopcntdq")


def cpu_info() -> tuple[str, list[str]]:
    """The CPU's model and which of :data:`FLAGS` it has (dnnh.machine reads /proc/cpuinfo)."""
    flags = machine.cpu_flags()
    return machine.cpu_model(), [f for f in FLAGS if f in flags]


def status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in kB, Threads, ...); 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss(pid: int | None = None) -> int:
    return status(os.getpid() if pid is None else pid, "VmRSS") * 1024


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def milvus_server_pid() -> int | None:
    for pid in children(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "milvus":
                return pid
        except OSError:
            continue
    return None


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alternate(fns: dict, repeats: int) -> dict:
    """Median seconds and last result of each function: one warm-up each, then rounds alternating."""
    out = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(times[name]), out[name]) for name in fns}


def mib(x: float) -> str:
    return f"{x / 2**20:,.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="codes stored")
    p.add_argument("--nbits", type=int, default=64)
    p.add_argument("--nq", type=int, default=100, help="queries per latency measurement")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--radius", type=int, default=2, help="inclusive radius for range search")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=int(THREADS_DEFAULT), help="HammingIndex threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--uri", help="Milvus URI (default: a Milvus Lite file in a temporary directory); "
                                 "an http:// server works too (its memory is then not measured)")
    p.add_argument("--collection", default="dnnh_bench")
    args = p.parse_args(argv)

    from importlib.metadata import version

    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    model, flags = cpu_info()
    print(f"# HammingIndex vs MilvusIndex; n={args.n:,} random {args.nbits}-bit codes, nq={args.nq}, k={args.k}, "
          f"radius={args.radius} (inclusive), repeats={args.repeats} (median)")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"# CPU: {model}; flags: {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}")
    print(f"# CPUs: {os.cpu_count()} online, {len(os.sched_getaffinity(0))} usable; HammingIndex threads "
          f"{args.threads}, numba {numba.get_num_threads()}; load average at start: {load()}")
    print(f"# versions: numpy {np.__version__}, numba {numba.__version__}, pymilvus {version('pymilvus')}, "
          f"milvus-lite {version('milvus-lite')}", flush=True)

    rng = np.random.default_rng(args.seed)
    nbytes = (args.nbits + 7) // 8
    db = rng.integers(0, 256, (args.n, nbytes), dtype=np.uint8)
    if args.nbits % 8:
        db[:, -1] &= (1 << (args.nbits % 8)) - 1
    # half the queries are stored codes with one bit flipped (so radius search finds something), half random
    q = db[rng.integers(0, args.n, args.nq)].copy()
    near = args.nq // 2
    bit = rng.integers(0, args.nbits, near)
    q[np.arange(near), bit // 8] ^= (1 << (bit % 8)).astype(np.uint8)
    far = rng.integers(0, 256, (args.nq - near, nbytes), dtype=np.uint8)
    if args.nbits % 8:
        far[:, -1] &= (1 << (args.nbits % 8)) - 1
    q[near:] = far

    # ---- HammingIndex
    before = rss()
    t = time.perf_counter()
    hx = HammingIndex(args.nbits, num_threads=args.threads)
    hx.add(db)
    _ = hx.ndistinct  # grouping happens here
    h_build = time.perf_counter() - t
    h_mem = rss() - before
    h_bytes = hx.memory_usage()["total"]
    print(f"# HammingIndex ({hx.kernel}): built in {h_build:.2f} s; RSS +{mib(h_mem)} "
          f"(memory_usage {mib(h_bytes)})", flush=True)

    # ---- MilvusIndex
    tmp = tempfile.TemporaryDirectory(prefix="dnnh-bench-")
    uri = args.uri or str(Path(tmp.name) / "backends.db")
    t = time.perf_counter()
    mx = MilvusIndex(args.nbits, uri=uri, collection=args.collection)
    m_start = time.perf_counter() - t
    mx.reset()
    server = milvus_server_pid()
    m_empty = rss(server) if server else 0
    t = time.perf_counter()
    mx.add(db)
    m_build = time.perf_counter() - t
    t = time.perf_counter()
    mx.search(q[:1], 1)
    m_first = time.perf_counter() - t
    m_rss = rss(server) if server else 0
    m_mem = m_rss - m_empty
    threads = status(server, "Threads") if server else 0
    print(f"# MilvusIndex ({'Milvus Lite, pid ' + str(server) if server else uri}): opened in {m_start:.2f} s "
          f"(server start included); built in {m_build:.2f} s; first search after it {m_first:.2f} s; "
          f"server RSS {mib(m_empty)} empty -> {mib(m_rss)} ({threads} threads)", flush=True)

    # ---- latencies, alternating
    knn = alternate({"h": lambda: hx.search(q, args.k), "m": lambda: mx.search(q, args.k)}, args.repeats)
    rng_ = alternate({"h": lambda: hx.range_search(q, args.radius), "m": lambda: mx.range_search(q, args.radius)},
                     args.repeats)
    (hk, (hd, _)), (mk, (md, _)) = knn["h"], knn["m"]
    (hr, (hl, hrd, _)), (mr, (ml, mrd, _)) = rng_["h"], rng_["m"]
    knn_ok = np.array_equal(hd, md)
    range_ok = np.array_equal(hl, ml) and np.array_equal(hrd, mrd)
    print(f"# checks: k-NN distances equal: {knn_ok}; range lims and distances equal: {range_ok} "
          f"({int(hl[-1]):,} results); load average at end: {load()}")
    mx.close()
    tmp.cleanup()

    print()
    print("| measure | HammingIndex | MilvusIndex (Milvus Lite) | Milvus / Hamming |")
    print("|---|---|---|---|")
    print(f"| build {args.n:,} codes (s) | {h_build:.3f} | {m_build:.3f} | {m_build / h_build:,.1f}x |")
    print(f"| k-NN k={args.k}, {args.nq} queries (ms) | {hk * 1e3:.2f} | {mk * 1e3:.1f} | {mk / hk:,.1f}x |")
    print(f"| radius {args.radius}, {args.nq} queries (ms) | {hr * 1e3:.2f} | {mr * 1e3:.1f} | {mr / hr:,.1f}x |")
    mem_ratio = f"{m_mem / h_mem:,.1f}x" if h_mem > 0 and server else "n/a"
    print(f"| resident memory growth over the build | {mib(h_mem)} | {mib(m_mem) if server else 'n/a'} | {mem_ratio} |")
    print(f"| bytes per code (RSS growth / n) | {h_mem / args.n:.1f} | "
          f"{f'{m_mem / args.n:.1f}' if server else 'n/a'} | |")
    print(f"| Milvus Lite start + open (s) | | {m_start:.2f} | |")
    return 0 if knn_ok and range_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
