"""A crash at any write of an epoch resumes to the uninterrupted result (the checkpoint is one unit)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import dnnh.runs as runs
from dnnh.training.train import train


class DiskFull(OSError):
    pass


def _spy_writes(monkeypatch, fail_at: int | None, seen: list[str]) -> None:
    """Record every file the run writes; raise at write number ``fail_at`` (0-based)."""
    real_bytes, real_text = runs.atomic_write_bytes, runs.atomic_write_text

    def guard(path) -> None:
        seen.append(str(path))
        if fail_at is not None and len(seen) - 1 == fail_at:
            raise DiskFull(f"simulated crash while writing {path}")

    monkeypatch.setattr(runs, "atomic_write_bytes", lambda path, data: (guard(path), real_bytes(path, data))[1])
    monkeypatch.setattr(runs, "atomic_write_text", lambda path, text: (guard(path), real_text(path, text))[1])


def _state(run_dir):
    best = load_file(run_dir / "model.safetensors")
    last = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=True)
    return best, last


def test_failing_each_write_in_turn_resumes_to_the_uninterrupted_run(tmp_path, digits, small_split, tiny_config,
                                                                     monkeypatch):
    config = tiny_config.replace(epochs=3)
    writes: list[str] = []
    with monkeypatch.context() as m:
        _spy_writes(m, None, writes)
        full = train(config, digits, small_split, tmp_path / "full", progress=False)
    best_full, last_full = _state(tmp_path / "full")
    # Every write after the run's config.json: the best weights, the checkpoint, the history, each epoch.
    later = [i for i, path in enumerate(writes) if not path.endswith("config.json")]
    assert {p.rsplit("/", 1)[-1] for p in (writes[i] for i in later)} == {"model.safetensors", "state.pt",
                                                                         "history.json"}
    for fail_at in later:
        run_dir = tmp_path / f"cut{fail_at}"
        with monkeypatch.context() as m:
            _spy_writes(m, fail_at, [])
            with pytest.raises(DiskFull):
                train(config, digits, small_split, run_dir, progress=False)
        resumed = train(config, digits, small_split, run_dir, resume=True, progress=False)
        best, last = _state(run_dir)
        assert all(torch.equal(best[k], best_full[k]) for k in best_full), f"best weights, failure at write {fail_at}"
        assert all(torch.equal(last["model"][k], last_full["model"][k]) for k in last_full["model"]), fail_at
        assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history], fail_at
