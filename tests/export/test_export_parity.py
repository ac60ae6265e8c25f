"""`dnnh export`: the ONNX model's bits and codes are `dnnh encode`'s, for every image.

Grayscale and RGB runs, 12 and 48 bits, both roles of a separate query network, batches of 1, 7
and the whole set. A bit may differ only where torch's output lies within ``TIE`` (1e-6) of 0.5,
where two correct fp32 implementations can round either way; the tests count such outputs and
check that every difference is one of them (on these runs there are none: every bit is equal).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import dnnh  # noqa: E402
from dnnh.cli.main import main  # noqa: E402
from dnnh.codes import CodeSet, pack_bits  # noqa: E402
from dnnh.encoder import Encoder  # noqa: E402
from dnnh.export import export_onnx, read_metadata  # noqa: E402
from dnnh.runs import CODES  # noqa: E402

CASES = [(1, 12), (1, 48), (3, 12), (3, 48)]
#: Outputs this close to 0.5 may round either way between two correct fp32 implementations.
TIE = 1e-6


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_batches(session, images, batch):
    parts = [session.run(None, {"images": images[i:i + batch]}) for i in range(0, len(images), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _torch_outputs(run, images, role):
    model = run.load_model()
    with torch.no_grad():
        return model(run.prep(images), role=role).numpy()


def _assert_same_bits(got, want, outputs):
    """Equal, except where torch's output is a tie within TIE of 0.5; returns how many such ties exist."""
    differ = got != want
    ties = np.abs(outputs - 0.5) <= TIE
    assert not (differ & ~ties).any(), f"{int((differ & ~ties).sum())} bits differ away from 0.5"
    return int(ties.sum())


@pytest.mark.parametrize("channels,bits", CASES)
def test_onnx_equals_encoder_for_both_roles_and_odd_batches(tiny_run, tmp_path, channels, bits):
    run, dataset = tiny_run(channels, bits)
    encoder = Encoder.from_run(run, num_workers=0)  # what `dnnh encode` runs (engine torch)
    images = dataset.images
    for role in ("database", "query"):
        path = tmp_path / f"{role}.onnx"
        done = export_onnx(run, path, role=role)
        assert done["nbits"] == bits and done["code_bytes"] == (bits + 7) // 8 and path.stat().st_size == done["bytes"]
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        session = _session(path)
        [inp], outs = session.get_inputs(), session.get_outputs()
        assert inp.name == "images" and inp.type == "tensor(uint8)" and inp.shape[1:] == [8, 8, channels]
        assert [o.name for o in outs] == ["bits", "codes"] and all(o.type == "tensor(uint8)" for o in outs)
        want = encoder.encode_images(images, role=role)
        outputs = _torch_outputs(run, images, role)
        for batch in (1, 7, len(images)):
            sub = slice(0, 50) if batch == 1 else slice(None)  # batch 1 on 50 images keeps it quick
            got_bits, got_codes = _run_batches(session, images[sub], batch)
            assert got_bits.shape == (len(want[sub]), bits) and got_codes.shape == (len(want[sub]), (bits + 7) // 8)
            _assert_same_bits(got_bits, want[sub], outputs[sub])
            assert np.array_equal(got_codes, pack_bits(got_bits))
            same = ~(got_bits != want[sub]).any(axis=1)  # every row but those a tie decided (none here)
            assert np.array_equal(got_codes[same], pack_bits(want[sub])[same])


def test_roles_differ_and_metadata_is_complete(tiny_run, tmp_path):
    run, dataset = tiny_run(3, 48)
    for role in ("database", "query"):
        export_onnx(run, tmp_path / f"{role}.onnx", role=role)
    a, b = (_session(tmp_path / f"{r}.onnx").run(None, {"images": dataset.images})[0] for r in ("database", "query"))
    assert not np.array_equal(a, b)  # the two networks are really two
    meta = read_metadata(tmp_path / "query.onnx")
    assert meta["nbits"] == "48" and meta["code_bytes"] == "6" and meta["input_size"] == "8"
    assert meta["channels"] == "3" and meta["role"] == "query" and meta["dnnh_version"] == dnnh.__version__
    assert meta["separate_query_network"] == "true" and "does not resize" in meta["input_layout"]
    config = json.loads(meta["run_config"])
    assert config["model"]["nbits"] == 48 and config["config"]["separate_query_network"] is True
    assert json.loads(meta["mean"]) == pytest.approx(run.prep.mean) and len(json.loads(meta["std"])) == 3
    model = onnx.load(str(tmp_path / "query.onnx"))
    assert model.producer_name == "dnnh" and not model.graph.input[1:]  # weights inside, one input


def test_cli_export_matches_cli_encode_files(tiny_run, tmp_path, capsys):
    """`dnnh export` then onnxruntime gives the bytes `dnnh encode` wrote, queries and database."""
    run, dataset = tiny_run(1, 12)
    out = tmp_path / "codes"
    assert main(["encode", "--run", str(run.path), "--out", str(out), "--engine", "torch"]) == 0
    for role in ("database", "query"):
        assert main(["export", "--run", str(run.path), "--out", str(tmp_path / f"{role}.onnx"), "--role", role]) == 0
        said = capsys.readouterr().out
        assert f"{role} network" in said and "codes [N, 2]" in said
        written = CodeSet.load(out / CODES[role])
        _, codes = _session(tmp_path / f"{role}.onnx").run(None, {"images": dataset.images[written.ids]})
        assert np.array_equal(codes, written.codes)


def test_wrong_input_size_is_refused_by_onnxruntime(tiny_run, tmp_path):
    run, dataset = tiny_run(1, 12)
    export_onnx(run, tmp_path / "m.onnx")
    big = np.zeros((2, 16, 16, 1), dtype=np.uint8)
    with pytest.raises(Exception, match="(?i)invalid dimensions"):
        _session(tmp_path / "m.onnx").run(None, {"images": big})


def test_overwrite_rules_and_one_line_errors(tiny_run, tmp_path, capsys):
    run, _ = tiny_run(1, 12)
    target = tmp_path / "notes.onnx"
    target.write_text("not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        export_onnx(run, target)
    assert target.read_text() == "not a model"
    assert main(["export", "--run", str(run.path), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert main(["export", "--run", str(run.path), "--out", str(target), "--force"]) == 0
    assert main(["export", "--run", str(run.path), "--out", str(target), "--opset", "18"]) == 0  # an ONNX file: replaced
    assert onnx.load(str(target)).opset_import[0].version == 18
    assert main(["export", "--run", str(run.path), "--out", str(tmp_path)]) == 1
    assert "directory" in capsys.readouterr().err


def test_missing_onnx_is_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import sys

    run, _ = tiny_run(1, 12)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    assert main(["export", "--run", str(run.path), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dnnh[onnx]'" in err and "needs onnx and onnxruntime" in err
    assert not (tmp_path / "m.onnx").exists()
