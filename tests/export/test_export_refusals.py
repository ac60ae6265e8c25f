"""Issue 25.9: export never replaces a file of a run, --force or not; an opset it cannot write is one line."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from dnnh.cli.main import main  # noqa: E402


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "split.json"])
def test_export_refuses_every_file_of_a_run_even_with_force(tiny_run, capsys, name):
    """Before: `dnnh export --force --out RUN/model.safetensors` replaced the run's weights with ONNX."""
    run, _ = tiny_run(1, 12)
    target = run.path / name
    before = target.read_bytes()
    for extra in ([], ["--force"]):
        assert main(["export", "--run", str(run.path), "--out", str(target), *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file of the run" in err and "even with --force" in err
    assert target.read_bytes() == before


def test_a_file_of_another_run_is_refused_too(tiny_run, capsys):
    run, _ = tiny_run(1, 12)
    other, _ = tiny_run(3, 12)
    target = other.path / "model.safetensors"
    before = target.read_bytes()
    assert main(["export", "--run", str(run.path), "--out", str(target), "--force"]) == 1
    assert "is a file of the run" in capsys.readouterr().err and target.read_bytes() == before


@pytest.mark.parametrize("opset", ["99", "5", "0"])
def test_an_opset_the_exporter_cannot_write_is_one_line(tiny_run, tmp_path, capsys, opset):
    """Before: --opset 99 was an internal error from deep inside torch.onnx."""
    run, _ = tiny_run(1, 12)
    assert main(["export", "--run", str(run.path), "--out", str(tmp_path / "m.onnx"), "--opset", opset]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--opset must be an integer from 11 to" in err
    assert not (tmp_path / "m.onnx").exists()
