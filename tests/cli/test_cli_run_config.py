"""Issue 36.11: a run's config.json that is not what dnnh writes is one line naming the file and the field.

Before: a config.json holding a JSON list, or a preprocessing ``mean`` that is a string, was an internal
error in ``eval`` and ``encode``; a preprocessing ``std`` of 0 was accepted and gave constant codes
(MAP 0.10, exit 0).
"""

from __future__ import annotations

import json
import shutil

import pytest

from dnnh.cli.main import main


def edited_run(tiny_run, tmp_path, change):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps(change(saved)))
    return run_dir


def set_preprocessing(field, value):
    def change(saved):
        saved["preprocessing"][field] = value
        return saved
    return change


CASES = {
    "a JSON list": (lambda saved: [saved], "must hold a JSON object"),
    "mean a string": (set_preprocessing("mean", "0.5"), "preprocessing 'mean'"),
    "mean a list of strings": (set_preprocessing("mean", ["0.5"]), "preprocessing 'mean'"),
    "std of 0": (set_preprocessing("std", [0.0]), "preprocessing 'std' must be above 0"),
    "std negative": (set_preprocessing("std", [-0.3]), "preprocessing 'std' must be above 0"),
    "std NaN": (set_preprocessing("std", [float("nan")]), "preprocessing 'std'"),
    "std infinite": (set_preprocessing("std", [float("inf")]), "preprocessing 'std'"),
    "std of two channels on a gray run": (set_preprocessing("std", [0.3, 0.3]), "preprocessing 'std'"),
    "preprocessing a list": (lambda saved: {**saved, "preprocessing": [1, 2]}, "'preprocessing' must be an object"),
    "dataset a string": (lambda saved: {**saved, "dataset": "digits"}, "'dataset' must be an object"),
}


@pytest.mark.parametrize("command", [["eval"], ["encode", "--reencode"]])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_edited_config_json_is_one_line_naming_the_file_and_field(tiny_run, tmp_path, capsys, case, command):
    change, words = CASES[case]
    run_dir = edited_run(tiny_run, tmp_path, change)
    capsys.readouterr()
    assert main([command[0], "--run", str(run_dir), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and str(run_dir / "config.json") in err and words in err, err
