"""benchmarks/gpu_check.py (issue 34.3, 34.9): runs with the repository alone, says which data it used, reports
each phase's figures separately. On this CPU: the --tiny run, and the data fallback when Fashion-MNIST is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402


def test_without_fashion_mnist_it_makes_digits_70k_from_the_repository_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "BESIDE", tmp_path / "none")
    monkeypatch.setattr(gpu_check, "FASHION_SYSTEM_ROOT", tmp_path / "none either")
    made = gpu_check.digits_70k
    monkeypatch.setattr(gpu_check, "digits_70k", lambda: made(per_class=30))  # 300 images: the same recipe, smaller
    dataset, said = gpu_check.find_data(None, tiny=False)
    assert said.startswith("digits-70k, made from scikit-learn's digits") and "MAP not" in said
    assert dataset.images.shape == (300, 28, 28, 1) and dataset.images.dtype == np.uint8
    assert np.bincount(dataset.labels).tolist() == [30] * 10 and dataset.images.max() > 200


def test_the_tiny_run_prints_every_phase_on_the_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--skip-tests"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = [line.split(":")[0] for line in done.stdout.splitlines() if ": " in line]
    for key in ("torch", "data", "training images/s", "GPU busy share while training", "host waits per training step",
                "encoding", "peak GPU memory, training", "peak GPU memory, scoring", "peak GPU memory, encoding"):
        assert key in keys, key
    assert "CUDA none" in done.stdout and "data: digits" in done.stdout
