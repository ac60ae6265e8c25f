"""Dataset loading figures: Fashion-MNIST load time and peak memory, lazy PNG decoding throughput.

Why: training streams file datasets through DataLoader workers while in-memory sets are sliced;
this measures what each costs on this machine, so the trainer's defaults (workers, caching) rest
on numbers. Run:

    OMP_NUM_THREADS=1 python benchmarks/data_loading.py [--images 2000] [--jpegs 300] [--cifar]

Prints a Markdown report (the figures in docs/results/data.md come from it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from dnnh.data import ArrayDataset, FileDataset, load_dataset
from dnnh import machine

BATCH = 100


def rss_child(code: str) -> float:
    """Growth of peak RSS (MB) in a fresh interpreter running ``code`` after importing dnnh.data.

    Reads VmHWM from /proc (Linux): ``ru_maxrss`` survives fork+exec, so a child would report the
    parent's peak.
    """
    script = ("import re, dnnh.data as d\n"
              "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024\n"
              "base = hwm()\n"
              f"{code}\n"
              "print(base, hwm())")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.split()
    return float(out[1]) - float(out[0])


def bench_fashion(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds = load_dataset("fashion-mnist")
        times.append(time.perf_counter() - t0)
        del ds
    tracemalloc.start()
    ds = load_dataset("fashion-mnist")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"n": len(ds), "array_mb": ds.images.nbytes / 1e6, "time_s": statistics.median(times),
            "times": times, "traced_peak_mb": peak / 1e6,
            "rss_delta_mb": rss_child("ds = d.load_dataset('fashion-mnist')")}


def make_pngs(folder: Path, n: int) -> ArrayDataset:
    """``n`` 32x32 RGB PNGs from Fashion-MNIST (padded, tinted): natural-ish content, not noise."""
    from PIL import Image

    src = load_dataset("fashion-mnist")
    idx = np.random.default_rng(0).choice(len(src), n, replace=False)
    gray = np.pad(src.images[idx, :, :, 0], ((0, 0), (2, 2), (2, 2)))
    tint = np.random.default_rng(1).uniform(0.4, 1.0, (n, 1, 1, 3))
    rgb = (gray[..., None] * tint).astype(np.uint8)
    for i in range(n):
        cls = folder / f"class{src.labels[idx[i]]}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb[i]).save(cls / f"{i:05d}.png")
    return ArrayDataset(images=rgb, labels=src.labels[idx], name="png-source")


class _Items:
    """Item-level torch Dataset: one image per task, default collate stacks a batch."""

    def __init__(self, ds: FileDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ds.load_image(i)


class _Batches:
    """Batch-level torch Dataset (as dnnh.data.pipeline does): one batch of indices per task."""

    def __init__(self, ds: FileDataset, batches: list[np.ndarray]) -> None:
        self.ds, self.batches = ds, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ds.load_images(self.batches[i])


def rate(fn, n_images: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_images / best


def bench_files(n: int) -> dict:
    import torch

    torch.set_num_threads(1)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pngs"
        memory = make_pngs(folder, n)
        t0 = time.perf_counter()
        files = load_dataset(folder)
        out["index_folder_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_dataset(folder, skip_corrupt=True)
        out["check_upfront_img_s"] = n / (time.perf_counter() - t0)
        order = np.random.default_rng(0).permutation(n)
        batches = [order[i:i + BATCH] for i in range(0, n, BATCH)]

        def sequential() -> None:
            for b in batches:
                files.load_images(b)
        out["filedataset_main_img_s"] = rate(sequential, n)
        for workers in (0, 2):
            for kind in ("items", "batches"):
                if kind == "items":
                    source, kw = _Items(files), {"batch_size": BATCH, "shuffle": True}
                else:
                    source, kw = _Batches(files, batches), {"batch_size": None}
                t0 = time.perf_counter()
                loader = torch.utils.data.DataLoader(source, num_workers=workers,
                                                     persistent_workers=workers > 0, **kw)
                for _ in loader:  # first epoch includes starting the workers
                    pass
                out[f"loader_{kind}_w{workers}_first_img_s"] = n / (time.perf_counter() - t0)

                def epoch(loader=loader) -> None:
                    for _ in loader:
                        pass
                out[f"loader_{kind}_w{workers}_img_s"] = rate(epoch, n)
                del loader

        def slicing() -> None:
            for b in batches:
                memory.load_images(b)
        out["array_slicing_img_s"] = rate(slicing, n, repeats=5)
    return out


def bench_jpeg(n: int) -> dict:
    """NUS-WIDE-like files: ``n`` 500x375 JPEGs (upscaled Fashion-MNIST plus grain), decoded and resized to 256x256."""
    from PIL import Image

    src = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpegs" / "a"
        folder.mkdir(parents=True)
        for i in range(n):
            big = np.asarray(Image.fromarray(src.images[i, :, :, 0]).resize((500, 375), Image.BILINEAR), np.float32)
            rgb = np.clip(big[..., None] * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 8, (375, 500, 3)), 0, 255)
            Image.fromarray(rgb.astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=85)
        files = load_dataset(folder.parent, image_size=256)
        batches = [np.arange(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]

        def decode() -> None:
            for b in batches:
                files.load_images(b)
        return {"jpeg_256_img_s": rate(decode, n, repeats=2)}


def bench_cifar_synthetic() -> dict:
    """A full-size (60,000 image) CIFAR-10 tarball of random pixels: load time and peak memory.

    Protocol 4 stores the pixel bytes raw, as Python 2's BINSTRING does in the published files
    (Python 3's protocol 2 would route them through a slow latin-1 round trip).
    """
    import io
    import pickle
    import tarfile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz", compresslevel=1) as tf:
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                blob = pickle.dumps({b"data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8),
                                     b"labels": rng.integers(0, 10, 10000).tolist()}, protocol=4)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
        t0 = time.perf_counter()
        ds = load_dataset("cifar10", root=path.parent, download=False)
        elapsed = time.perf_counter() - t0
        rss = rss_child(f"ds = d.load_dataset('cifar10', root={str(path.parent)!r}, download=False)")
        return {"n": len(ds), "time_s": elapsed, "rss_delta_mb": rss, "array_mb": ds.images.nbytes / 1e6,
                "tarball_mb": path.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jpegs", type=int, default=300, help="NUS-WIDE-like JPEGs for the 256x256 decode rate")
    parser.add_argument("--cifar", action="store_true", help="also a synthetic full-size CIFAR-10 tarball")
    args = parser.parse_args()
    print(f"# {machine.describe()} (at start)", flush=True)
    print(f"# data loading benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    f = bench_fashion(args.repeats)
    print(f"\nFashion-MNIST via load_dataset: {f['n']} images, array {f['array_mb']:.1f} MB; "
          f"load {f['time_s']:.2f} s (median of {args.repeats}: {', '.join(f'{t:.2f}' for t in f['times'])}); "
          f"tracemalloc peak {f['traced_peak_mb']:.1f} MB; max RSS growth {f['rss_delta_mb']:.1f} MB")
    r = bench_files(args.images)
    print(f"\n{args.images} PNGs 32x32 RGB, batches of {BATCH} (images/s, best of 3):")
    print(f"- index the folder (no decoding): {r['index_folder_s'] * 1000:.0f} ms")
    print(f"- skip_corrupt=True up-front check: {r['check_upfront_img_s']:.0f} img/s")
    print(f"- FileDataset.load_images, main process: {r['filedataset_main_img_s']:.0f}")
    for w in (0, 2):
        for kind, what in (("items", "item tasks (default collate)"), ("batches", "batch tasks (as pipeline.py)")):
            print(f"- DataLoader, {what}, {w} workers: {r[f'loader_{kind}_w{w}_img_s']:.0f} "
                  f"(first epoch, with worker start: {r[f'loader_{kind}_w{w}_first_img_s']:.0f})")
    print(f"- ArrayDataset.load_images (in-memory slicing): {r['array_slicing_img_s']:.0f}")
    j = bench_jpeg(args.jpegs)
    print(f"- {args.jpegs} JPEGs 500x375 decoded and resized to 256x256, main process: {j['jpeg_256_img_s']:.0f}")
    if args.cifar:
        c = bench_cifar_synthetic()
        print(f"\nSynthetic CIFAR-10 tarball ({c['tarball_mb']:.0f} MB, {c['n']} images, {c['array_mb']:.0f} MB array): "
              f"load {c['time_s']:.2f} s, max RSS growth {c['rss_delta_mb']:.0f} MB")


if __name__ == "__main__":
    main()
