"""Issue 36.12 and 36.9: a run's codes carry the origin of the weights that made them, and of their own arrays.

Before (36.12): `dnnh eval` encoded with the weights it loaded at its start but labelled the codes by
hashing whatever model.safetensors was on disk afterwards; run while `train` was writing, it wrote
epoch-1 codes stamped with the epoch-3 weights, and every later eval reused them ("model and data
unchanged") with a MAP of 0.31 for a model of 0.54. Eval and encode also started (and worked for
minutes) while a train held the run. Before (36.9): codes or labels edited inside codes_*.npz, the
origin record kept, were reused and scored without a word.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest
from support.retrain import other_weights

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.encoder import Encoder
from dnnh.locks import lock_folder
from dnnh.runs import BEST_WEIGHTS, Run


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture()
def run_copy(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    return run_dir


def later_weights(run_dir, path):
    """What a train writing this run would save next: other weights of the same architecture."""
    return other_weights(run_dir, 1, to=path).read_bytes()


@pytest.mark.parametrize("command", [["eval", "--reencode"], ["encode", "--reencode"]])
def test_codes_carry_the_weights_the_encoder_loaded_not_the_file_written_meanwhile(run_copy, tmp_path, monkeypatch,
                                                                                  capsys, command):
    """The race made deterministic: the weights file is replaced after the encoder loaded it, before the
    origin was computed. Before: the codes were stamped with the new file's digest (and reused later)."""
    loaded_bytes = (run_copy / BEST_WEIGHTS).read_bytes()
    newer = later_weights(run_copy, tmp_path / "newer.safetensors")
    original = Encoder.encode_split

    def train_saves_a_new_best_meanwhile(self, *args, **kwargs):
        os.replace(tmp_path / "newer.safetensors", run_copy / BEST_WEIGHTS)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Encoder, "encode_split", train_saves_a_new_best_meanwhile)
    assert main([command[0], "--run", str(run_copy), *command[1:]]) == 0
    monkeypatch.undo()
    stale = {role: CodeSet.load(run_copy / f"codes_{role}.npz") for role in ("query", "database")}
    assert digest(newer) != digest(loaded_bytes)
    for codes in stale.values():
        assert codes.origin["weights"] == digest(loaded_bytes)  # before: digest(newer), the file on disk then
    capsys.readouterr()
    assert main(["eval", "--run", str(run_copy)]) == 0  # the file's weights made no codes yet: encoded now
    assert "codes reused" not in capsys.readouterr().out
    fresh = CodeSet.load(run_copy / "codes_query.npz")
    assert fresh.origin["weights"] == digest(newer) and not np.array_equal(fresh.codes, stale["query"].codes)


@pytest.mark.parametrize("command, options", [(["eval"], []), (["encode"], ["--out", "OUT"]),
                                              (["encode"], ["--shard", "0/2", "--out", "OUT"]),
                                              (["index", "build"], ["--out", "OUT/db.dhi"])])
def test_eval_and_encode_refuse_at_their_start_while_a_train_holds_the_run(tiny_run, tmp_path, monkeypatch, capsys,
                                                                          command, options):
    """Before: they loaded the data and encoded (or reused the codes) while train wrote the run."""
    touched = []
    monkeypatch.setattr(Run, "load_dataset", lambda self, source=None: touched.append("data") or 1 / 0)
    monkeypatch.setattr(Encoder, "from_run", classmethod(lambda cls, *a, **k: touched.append("model") or 1 / 0))
    out = tmp_path / "out"
    options = [word.replace("OUT", str(out)) for word in options]
    capsys.readouterr()
    with lock_folder(tiny_run, "run directory"):  # what `dnnh train --run` holds for its whole run
        rc = main([*command, "--run", str(tiny_run), *options])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert f"PID {os.getpid()}" in err and "dnnh train" in err and "internal error" not in err
    assert touched == [] and not out.exists()


def edit(path, key):
    """Change one array of a codes file with numpy, keeping every other member (its origin record too)."""
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    if key == "codes":
        arrays["codes"] = arrays["codes"] ^ np.uint8(0xFF)
    else:
        arrays[key] = np.roll(arrays[key], 1)
    assert "origin" in arrays
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("key", ["codes", "labels", "ids"])
@pytest.mark.parametrize("role", ["query", "database"])
def test_edited_codes_with_their_origin_kept_are_encoded_again_saying_why(run_copy, capsys, key, role):
    """Before: reused and scored (MAP 0.063 where re-encoding gives 0.389), "model and data unchanged"."""
    assert main(["eval", "--run", str(run_copy), "--json"]) == 0
    honest = capsys.readouterr().out
    path = run_copy / f"codes_{role}.npz"
    edit(path, key)
    assert main(["eval", "--run", str(run_copy), "--json"]) == 0
    captured = capsys.readouterr()
    assert "codes reused" not in captured.out
    assert f"{path.name}" in captured.err and "changed after dnnh wrote it" in captured.err
    assert captured.out.split("\n{", 1)[1] == honest.split("\n{", 1)[1]  # the report of the true codes
    assert CodeSet.load(path).origin is not None  # written again, with a digest that matches


def test_edited_codes_given_by_name_are_refused(run_copy, tmp_path, capsys):
    """Where the user names the files (eval --query-codes, index build --codes, search --codes), no re-encode
    can stand in: one line naming the file. Before: scored (exit 0)."""
    query, database = run_copy / "codes_query.npz", run_copy / "codes_database.npz"
    edit(database, "labels")
    capsys.readouterr()
    assert main(["eval", "--query-codes", str(query), "--db-codes", str(database)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(database) in err and "changed after dnnh wrote it" in err
    assert main(["index", "build", "--codes", str(database), "--out", str(tmp_path / "db.dhi")]) == 1
    assert "changed after dnnh wrote it" in capsys.readouterr().err and not (tmp_path / "db.dhi").exists()


def test_a_file_saved_again_by_the_library_keeps_a_record_that_no_longer_matches(run_copy):
    """The digest is taken when the codes are encoded, not whenever a CodeSet is saved: editing through
    the library and saving does not bless the edit."""
    path = run_copy / "codes_query.npz"
    codes = CodeSet.load(path)
    codes.labels = codes.labels[::-1].copy()
    codes.save(path)
    with pytest.raises(ValueError, match="changed after dnnh wrote it"):
        CodeSet.load(path)
    codes.origin = None  # dropping the record is how a deliberate edit is saved
    codes.save(path)
    assert CodeSet.load(path).origin is None


def test_search_refuses_database_codes_of_other_weights_than_its_queries(run_copy, tmp_path, capsys):
    """After a retrain or resume, the run's codes_database.npz is of the old weights while the queries
    are encoded with the new ones. Before: searched (exit 0), distances between two models' codes."""
    from PIL import Image

    from dnnh.data.digits import load_digits

    image = tmp_path / "q.png"
    Image.fromarray(load_digits().images[0, :, :, 0]).save(image)
    assert main(["search", str(image), "--run", str(run_copy), "-k", "3", "--ids-only"]) == 0
    later_weights(run_copy, tmp_path / "w.safetensors")
    os.replace(tmp_path / "w.safetensors", run_copy / BEST_WEIGHTS)  # a retrain or resume since the codes
    capsys.readouterr()
    assert main(["search", str(image), "--run", str(run_copy), "-k", "3", "--ids-only"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "codes_database.npz holds codes of weights" in err
