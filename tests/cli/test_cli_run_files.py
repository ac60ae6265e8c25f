"""Issue 25.11: a run's files that lie are refused in one line: non-finite weights, tampered config.json."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dnnh.cli.main import main

@pytest.fixture()
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns(".dnnh.lock"))
    return copy


def one_line_error(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_weights_full_of_nan_are_refused(run_copy, capsys):
    """Before: a model.safetensors of NaN scored silently (MAP 0.10)."""
    path = run_copy / "model.safetensors"
    tensors = load_file(path)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, path)
    err = one_line_error(capsys, ["eval", "--run", str(run_copy)])
    assert f"{name} holds NaN or infinite values" in err


@pytest.mark.parametrize("where, key, value, message", [
    ("model", "nbits", 10**9, "nbits 1000000000 is outside 1..4096"),
    ("preprocessing", "input_size", 0, "input_size 0 is outside 4..2048"),
    ("preprocessing", "input_size", 10**6, "input_size 1000000 is outside 4..2048"),
])
def test_config_values_are_bounded_before_anything_is_allocated(run_copy, capsys, where, key, value, message):
    """Before: a huge nbits or input_size reached torch's allocator ("internal error ... can't allocate memory")."""
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    saved[where][key] = value
    path.write_text(json.dumps(saved))
    assert message in one_line_error(capsys, ["eval", "--run", str(run_copy)])


def test_a_run_config_without_its_model_is_refused(run_copy, capsys):
    """Before: a dnnh-run/2 config.json without 'model' was scored with an architecture guessed from
    the training config (it need not be the one the weights were trained as)."""
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    del saved["model"]
    path.write_text(json.dumps(saved))
    err = one_line_error(capsys, ["eval", "--run", str(run_copy)])
    assert "lacks 'model'" in err and "restore that config.json" in err and "train the run again" in err
