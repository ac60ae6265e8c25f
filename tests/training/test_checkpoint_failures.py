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


def _poison_after(monkeypatch, first_epoch: int) -> dict:
    """Make every loss NaN from epoch ``first_epoch + 1`` on (switched on at the end of ``first_epoch``)."""
    import dnnh.training.train as training

    poison = {"on": False}
    real = training.make_objective

    def make(*args, **kwargs):
        objective = real(*args, **kwargs)
        forward = objective.forward

        def poisoned(*a, **k):
            loss, count = forward(*a, **k)
            return (loss * float("nan") if poison["on"] else loss), count
        objective.forward = poisoned
        return objective

    monkeypatch.setattr(training, "make_objective", make)
    return {"poison": poison, "on_epoch_end": lambda epoch, record: poison.update(on=epoch >= first_epoch)}


def test_a_nan_loss_stops_the_run_in_one_line_keeping_the_last_good_checkpoint(tmp_path, digits, small_split,
                                                                              tiny_config, monkeypatch):
    """Issue 36.3. Before: a NaN loss trained every epoch to the end, checkpointed and scored a NaN model."""
    from dnnh.errors import DivergedError

    hooks = _poison_after(monkeypatch, first_epoch=1)
    run_dir = tmp_path / "run"
    with pytest.raises(DivergedError) as error:
        train(tiny_config.replace(epochs=3), digits, small_split, run_dir, progress=False,
              on_epoch_end=hooks["on_epoch_end"])
    message = str(error.value)
    assert "\n" not in message and "epoch 2" in message and "loss became nan" in message
    assert "checkpoint of epoch 1" in message
    best, last = _state(run_dir)
    assert int(last["epoch"]) == 0  # the checkpoint stores the last finished epoch 0-based: epoch 1
    assert all(bool(torch.isfinite(v).all()) for v in best.values())
    assert all(bool(torch.isfinite(v).all()) for v in last["model"].values() if v.is_floating_point())
    import json

    assert [h["epoch"] for h in json.loads((run_dir / "history.json").read_text())["history"]] == [1]


def test_weights_that_became_nan_with_a_finite_loss_stop_the_run_too():
    """The epoch-end check also reads the weights (one flag, one wait an epoch): a last step can leave NaN
    weights behind a finite mean loss."""
    from dnnh.errors import DivergedError
    from dnnh.training.preflight import check_epoch_finite

    model = torch.nn.Linear(2, 2)
    check_epoch_finite({"epoch": 1, "loss": 0.5}, model, 0, "run")  # finite: nothing happens
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(DivergedError, match="epoch 4: the weights became NaN or infinite; the run keeps its "
                                            "checkpoint of epoch 3 in run"):
        check_epoch_finite({"epoch": 4, "loss": 0.5}, model, 3, "run")
