"""Encoding in shards and indexing the parts: the same index as the whole database, on either backend."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.index import HammingIndex

TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
        "--input-size", "8", "--epochs", "1", "--batch-size", "40", "--threads", "1", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    run = root / "run"
    assert main(["train", "--run", str(run), *TINY]) == 0
    for i in range(3):
        assert main(["encode", "--run", str(run), "--shard", f"{i}/3", "--out", str(root / "parts"),
                     "--engine", "torch"]) == 0
    return root, run


def test_parts_merge_into_the_index_of_the_whole_database(sharded, capsys):
    root, run = sharded
    parts = sorted((root / "parts").glob("codes_database.part-*-of-003.npz"))
    assert len(parts) == 3
    assert main(["index", "build", "--codes", *map(str, parts), "--out", str(root / "parts.dhi")]) == 0
    assert main(["index", "build", "--codes", str(run / "codes_database.npz"), "--out", str(root / "whole.dhi")]) == 0
    merged, whole = HammingIndex.load(root / "parts.dhi"), HammingIndex.load(root / "whole.dhi")
    queries = CodeSet.load(run / "codes_query.npz").codes
    assert merged.ntotal == whole.ntotal == len(CodeSet.load(run / "codes_database.npz"))
    for got, want in zip(merged.search(queries, 20), whole.search(queries, 20)):
        np.testing.assert_array_equal(got, want)  # same ids in the same order: the parts are contiguous shares
    capsys.readouterr()
    assert main(["index", "build", "--codes", str(parts[0]), str(parts[2]), "--out", str(root / "x.dhi")]) == 1
    assert "missing [1]" in capsys.readouterr().err and not (root / "x.dhi").exists()


def test_shard_argument_is_checked_while_parsing(sharded, capsys):
    _, run = sharded
    with pytest.raises(SystemExit):
        main(["encode", "--run", str(run), "--shard", "3/3"])
    assert "expected I/N with 0 <= I < N" in capsys.readouterr().err


def test_parts_go_into_a_milvus_collection_and_search_there(sharded, tmp_path, capsys):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    root, run = sharded
    parts = sorted((root / "parts").glob("codes_database.part-*-of-003.npz"))
    uri = str(tmp_path / "codes.db")
    assert main(["index", "build", "--codes", *map(str, parts), "--backend", "milvus", "--uri", uri,
                 "--collection", "digits12"]) == 0
    image = tmp_path / "q.png"
    from dnnh.data.digits import load_digits

    Image.fromarray(load_digits().images[int(CodeSet.load(parts[1]).ids[4]), :, :, 0]).save(image)
    capsys.readouterr()
    assert main(["search", str(image), "--run", str(run), "-k", "5", "--backend", "milvus", "--uri", uri,
                 "--collection", "digits12"]) == 0
    def distances(out: str) -> list[str]:  # "  1. id 42  distance 0  label 3": the word after "distance"
        return [line.split("distance")[1].split()[0] for line in out.splitlines() if "distance" in line]

    milvus_lines = distances(capsys.readouterr().out)
    assert main(["search", str(image), "--run", str(run), "-k", "5"]) == 0
    local_lines = distances(capsys.readouterr().out)
    assert milvus_lines == local_lines and milvus_lines[0] == "0"  # the same distances; the image itself first


def test_a_part_of_another_encode_is_refused_by_index_build(sharded, tmp_path, capsys):
    """Issue 25.10. Before: a part of another encode (same shape, nbits and ids, other codes) merged silently."""
    import shutil

    import torch

    from dnnh.runs import Run

    root, run = sharded
    other = tmp_path / "other"
    shutil.copytree(run, other)  # the same split, so the same ids; other weights, so other codes
    retrained = Run.open(other)
    model = retrained.load_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    retrained.save_best(model, epoch=1)
    assert main(["encode", "--run", str(other), "--shard", "1/3", "--out", str(tmp_path / "parts"),
                 "--engine", "torch"]) == 0
    parts = sorted((root / "parts").glob("codes_database.part-*-of-003.npz"))
    odd = tmp_path / "parts" / parts[1].name
    assert CodeSet.load(odd).ids.tolist() == CodeSet.load(parts[1]).ids.tolist()  # colliding ids
    assert not np.array_equal(CodeSet.load(odd).codes, CodeSet.load(parts[1]).codes)  # other codes
    capsys.readouterr()
    out = tmp_path / "mixed.dhi"
    assert main(["index", "build", "--codes", str(parts[0]), str(odd), str(parts[2]), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(odd) in err and "part of another encode" in err
    assert not out.exists()


def test_parts_written_before_provenance_still_build(sharded, tmp_path):
    """Parts without a provenance record (written by an earlier dnnh) build as before."""
    root, _ = sharded
    old = []
    for path in sorted((root / "parts").glob("codes_database.part-*-of-003.npz")):
        part = CodeSet.load(path)
        assert part.provenance is not None and part.provenance["of"] == 3
        part.provenance = None
        part.save(tmp_path / path.name)
        old.append(tmp_path / path.name)
    assert main(["index", "build", "--codes", *map(str, old), "--out", str(tmp_path / "old.dhi")]) == 0
    assert HammingIndex.load(tmp_path / "old.dhi").ntotal == sum(len(CodeSet.load(p)) for p in old)


def retrained_copy(run, folder):
    """The run copied with other weights (the same split, so the same ids)."""
    import shutil

    from support.retrain import other_weights

    shutil.copytree(run, folder)
    other_weights(folder, 3)
    return folder


def build_mixed(root, odd, out, capsys):
    parts = sorted((root / "parts").glob("codes_database.part-*-of-003.npz"))
    capsys.readouterr()
    rc = main(["index", "build", "--codes", str(parts[0]), str(odd), str(parts[2]), "--out", str(out)])
    return rc, capsys.readouterr().err, parts


def test_a_part_of_another_engine_is_refused_by_index_build(sharded, tmp_path, capsys):
    """Issue 36.4. Before: parts of `--engine torch` and `--engine onnxruntime-int8` carried one set id and merged."""
    pytest.importorskip("onnxruntime")
    root, run = sharded
    assert main(["encode", "--run", str(run), "--shard", "1/3", "--out", str(tmp_path / "int8"),
                 "--engine", "onnxruntime-int8"]) == 0
    odd = tmp_path / "int8" / "codes_database.part-001-of-003.npz"
    rc, err, parts = build_mixed(root, odd, tmp_path / "mixed.dhi", capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert str(odd) in err and parts[0].name in err and "engine onnxruntime-int8" in err and "engine torch" in err
    assert not (tmp_path / "mixed.dhi").exists()


def test_a_part_with_a_copied_provenance_is_refused_by_index_build(sharded, tmp_path, capsys):
    """Issue 36.4. Before: another run's part carrying its sibling's provenance record merged (exit 0)."""
    root, run = sharded
    other = retrained_copy(run, tmp_path / "other")
    assert main(["encode", "--run", str(other), "--shard", "1/3", "--out", str(tmp_path / "theirs"),
                 "--engine", "torch"]) == 0
    odd = tmp_path / "theirs" / "codes_database.part-001-of-003.npz"
    ours = CodeSet.load(root / "parts" / odd.name)
    theirs = CodeSet.load(odd)
    assert not np.array_equal(theirs.codes, ours.codes)
    with np.load(odd) as z:
        arrays = {name: z[name] for name in z.files}
    with np.load(root / "parts" / odd.name) as z:
        arrays["provenance"] = z["provenance"]  # the sibling's record, copied as is
    with open(odd, "wb") as fh:
        np.savez(fh, **arrays)
    rc, err, parts = build_mixed(root, odd, tmp_path / "mixed.dhi", capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert str(odd) in err and parts[0].name in err and not (tmp_path / "mixed.dhi").exists()


def test_parts_without_provenance_from_two_runs_build_with_a_note(sharded, tmp_path, capsys):
    """Issue 36.11. Before: a bare part of another run, same length, merged into the set without a word.
    Now (bare parts cannot be told apart) the build says so in one line, and still builds."""
    root, run = sharded
    other = retrained_copy(run, tmp_path / "other")
    assert main(["encode", "--run", str(other), "--shard", "1/3", "--out", str(tmp_path / "theirs"),
                 "--engine", "torch"]) == 0
    bare = []
    (tmp_path / "bare").mkdir()
    for path in [*sorted((root / "parts").glob("codes_database.part-00[02]-of-003.npz")),
                 tmp_path / "theirs" / "codes_database.part-001-of-003.npz"]:
        part = CodeSet.load(path)
        part.provenance = None  # the format before provenance
        part.save(tmp_path / "bare" / path.name)
        bare.append(tmp_path / "bare" / path.name)
    capsys.readouterr()
    assert main(["index", "build", "--codes", *map(str, sorted(bare)), "--out", str(tmp_path / "bare.dhi")]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "carry no provenance" in err and len(err.strip().splitlines()) == 1
