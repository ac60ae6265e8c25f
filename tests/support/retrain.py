"""Other weights for a trained run, as a retrain or a `--resume` would leave them (the same architecture)."""

from __future__ import annotations

from pathlib import Path

import torch

from dnnh.runs import Run, save_weights


def other_weights(run_dir: Path, seed: int, to: Path | None = None) -> Path:
    """Perturb the run's best model with seeded noise and save it as the run's model.safetensors (``to``:
    into that file instead, for a test to swap in later); returns the file written."""
    run = Run.open(run_dir)
    model = run.load_model()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    if to is None:
        run.save_best(model, epoch=3)
        return run.path / "model.safetensors"
    save_weights(model, to)
    return to
