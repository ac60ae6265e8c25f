"""Issue 25.17: eval and encode reuse the codes train kept when the weights and data are unchanged, and say so.

Before: `dnnh eval` and `dnnh encode` encoded the whole split again (85 s each on Fashion-MNIST)
though `dnnh train` had just encoded it with the same weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.encoder import Encoder
from dnnh.evaluation import reusable_codes
from dnnh.runs import Run


def no_encoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("encoded although the run's codes were reusable")

    monkeypatch.setattr(Encoder, "from_run", classmethod(refuse))
    monkeypatch.setattr(Encoder, "encode_split", refuse)


def test_train_keeps_its_codes_with_their_origin(tiny_run):
    query = CodeSet.load(tiny_run / "codes_query.npz")
    assert query.origin is not None and query.origin["engine"] == "torch" and len(query.origin["weights"]) == 16


def test_eval_and_encode_reuse_the_codes_train_kept(tiny_run, tmp_path, monkeypatch, capsys):
    before = CodeSet.load(tiny_run / "codes_database.npz")
    no_encoding(monkeypatch)
    capsys.readouterr()
    assert main(["eval", "--run", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert f"codes reused from {tiny_run} (model and data unchanged" in out and "MAP" in out
    assert main(["encode", "--run", str(tiny_run), "--out", str(tmp_path)]) == 0
    assert "codes reused from" in capsys.readouterr().out
    copied = CodeSet.load(tmp_path / "codes_database.npz")
    np.testing.assert_array_equal(copied.codes, before.codes)
    np.testing.assert_array_equal(copied.ids, before.ids)


def test_reencode_encodes_again(tiny_run, capsys):
    capsys.readouterr()
    assert main(["eval", "--run", str(tiny_run), "--reencode"]) == 0
    assert "codes reused" not in capsys.readouterr().out


def test_a_changed_model_file_is_encoded_again(tiny_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    run = Run.open(run_dir)
    model = run.load_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    run.save_best(model, epoch=1)
    old = CodeSet.load(run_dir / "codes_database.npz")
    capsys.readouterr()
    assert main(["eval", "--run", str(run_dir)]) == 0
    assert "codes reused" not in capsys.readouterr().out
    new = CodeSet.load(run_dir / "codes_database.npz")
    assert new.origin["weights"] != old.origin["weights"] and not np.array_equal(new.codes, old.codes)
    assert main(["eval", "--run", str(run_dir)]) == 0  # the new codes are now the run's: reused
    assert "codes reused" in capsys.readouterr().out


def test_changed_data_or_codes_without_origin_are_not_reused(tiny_run, tmp_path):
    run = Run.open(tiny_run)
    dataset = run.load_dataset()
    assert reusable_codes(run, dataset) is not None
    images = dataset.images.copy()
    images[int(run.split.database[0])] ^= 1  # one image changed: another fingerprint
    assert reusable_codes(run, dataclasses.replace(dataset, images=images)) is None
    assert reusable_codes(run, dataset, engine="onnxruntime") is None  # codes of another engine
    assert reusable_codes(run, dataset, engine="auto") is not None  # auto's codes equal torch's
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_run, bare)
    for name in ("codes_query.npz", "codes_database.npz"):
        codes = CodeSet.load(bare / name)
        codes.origin = None  # written before codes carried their origin
        codes.save(bare / name)
    assert reusable_codes(Run.open(bare), dataset) is None


@pytest.mark.parametrize("name", ["codes_query.npz", "codes_database.npz"])
def test_a_damaged_codes_file_is_encoded_again(tiny_run, tmp_path, name):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / name).write_bytes(b"not a zip")
    run = Run.open(run_dir)
    assert reusable_codes(run, run.load_dataset()) is None


def test_index_build_from_a_run_reuses_its_database_codes(tiny_run, tmp_path, monkeypatch, capsys):
    from dnnh.index import HammingIndex

    no_encoding(monkeypatch)
    capsys.readouterr()
    assert main(["index", "build", "--run", str(tiny_run), "--out", str(tmp_path / "db.dhi")]) == 0
    assert "codes reused from" in capsys.readouterr().out
    assert HammingIndex.load(tmp_path / "db.dhi").ntotal == len(CodeSet.load(tiny_run / "codes_database.npz"))
