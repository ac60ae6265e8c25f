"""Shard provenance (issue 25.10): parts of one encode agree, a part of another encode is named and refused."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.codes import CodeSet
from dnnh.codes.provenance import check_set, read_provenance, shard_provenance


def write_part(folder, i, n, weights="aaaa", ids=np.arange(40), rng=None, name=None, engine="torch",
               precision="fp32 on cpu"):
    rng = rng or np.random.default_rng(i)
    share = np.array_split(ids, n)[i]
    part = CodeSet.from_bits(rng.integers(0, 2, (len(share), 16)), ids=share)
    part.stamp_provenance(shard_provenance("run", weights, "database", ids, i, n, engine=engine, precision=precision))
    path = folder / (name or f"codes_database.part-{i:03d}-of-{n:03d}.npz")
    part.save(path)
    return path


def test_a_part_carries_its_provenance_and_reads_back(tmp_path):
    path = write_part(tmp_path, 1, 4)
    record = read_provenance(path)
    assert record["part"] == 1 and record["of"] == 4 and record["run"] == "run" and len(record["set"]) == 16
    assert CodeSet.load(path).provenance == record
    check_set([(write_part(tmp_path, i, 4), (i, 4)) for i in range(4)])  # one encode: accepted


def test_a_part_of_another_encode_is_refused_though_it_looks_alike(tmp_path):
    """Before: same shape, nbits and ids, other weights: merged without a word."""
    parts = [(write_part(tmp_path, i, 2), (i, 2)) for i in range(2)]
    other = tmp_path / "other"
    other.mkdir()
    parts[1] = (write_part(other, 1, 2, weights="bbbb"), (1, 2))
    with pytest.raises(ValueError, match="is part of another encode .*weights bbbb"):
        check_set(parts)


def test_a_renamed_part_and_a_mix_with_old_files_are_refused(tmp_path):
    renamed = write_part(tmp_path, 0, 2, name="codes_database.part-001-of-002.npz")
    with pytest.raises(ValueError, match="named part 1 of 2 but holds part 0 of 2"):
        check_set([(renamed, (1, 2))])
    old = tmp_path / "old.npz"
    CodeSet.from_bits(np.zeros((3, 16), np.uint8)).save(old)
    assert read_provenance(old) is None
    with pytest.raises(ValueError, match="carries no provenance but other parts do"):
        check_set([(write_part(tmp_path, 0, 2), (0, 2)), (old, (1, 2))])
    check_set([(old, (0, 1))])  # files written before provenance: accepted as before


@pytest.mark.parametrize("engine, precision", [("onnxruntime-int8", "int8 on cpu"), ("torch", "fp32 on cuda"),
                                               ("torch-bf16", "bf16 on cpu")])
def test_parts_of_another_engine_or_precision_are_another_set(tmp_path, engine, precision):
    """Issue 36.4. Before: the set id covered weights, ids and N only: torch and onnxruntime-int8 parts merged."""
    other = tmp_path / "other"
    other.mkdir()
    parts = [(write_part(tmp_path, 0, 2), (0, 2)), (write_part(other, 1, 2, engine=engine, precision=precision), (1, 2))]
    with pytest.raises(ValueError, match=f"is part of another encode .*engine {engine} .*than "
                                         "codes_database.part-000-of-002.npz .*engine torch"):
        check_set(parts)


def test_a_record_copied_onto_other_codes_is_refused_naming_both_parts(tmp_path):
    """Issue 36.4. Before: a part whose provenance was copied from a sibling merged."""
    parts = [(write_part(tmp_path, i, 2), (i, 2)) for i in range(2)]
    impostor = CodeSet.load(parts[1][0])
    impostor.codes = impostor.codes ^ np.uint8(1)  # other codes (another run's, say), the sibling's record kept
    impostor.save(parts[1][0])
    with pytest.raises(ValueError, match=r"part-001-of-002.npz is not a part of the set of "
                                         r"codes_database.part-000-of-002.npz .*not the ones its provenance record"):
        check_set(parts)


def test_a_set_of_parts_without_provenance_builds_with_a_note(tmp_path):
    """Issue 36.11. Before: bare parts (one of them another run's) merged without a word."""
    bare = []
    for i in range(2):
        path = tmp_path / f"codes_database.part-{i:03d}-of-002.npz"
        CodeSet.from_bits(np.zeros((3, 16), np.uint8), ids=np.arange(3) + 3 * i).save(path)
        bare.append((path, (i, 2)))
    assert "carry no provenance" in check_set(bare) and "nothing shows" in check_set(bare)
    assert check_set([(write_part(tmp_path, i, 2), (i, 2)) for i in range(2)]) is None
