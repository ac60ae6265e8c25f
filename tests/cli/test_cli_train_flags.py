"""Issue 25.15-16: `dnnh train` refuses a locked run before loading data, and every flag says its default."""

from __future__ import annotations

import pytest

from dnnh.cli.main import main
from dnnh.locks import lock_folder


def test_a_locked_run_is_refused_before_the_data_loads(tmp_path, capsys, monkeypatch):
    """Before: the second train loaded the whole dataset (14 s on Fashion-MNIST) and then refused."""
    from dnnh.data.sources import DataSource

    run = tmp_path / "run"
    run.mkdir()
    loaded = []
    monkeypatch.setattr(DataSource, "load", lambda self, *a, **k: loaded.append(1))
    with lock_folder(run, "run directory"):
        assert main(["train", "--run", str(run), "--data", "digits", "--epochs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "being written by another dnnh process" in err
    assert loaded == []


def test_the_training_flags_say_what_they_do_and_their_defaults(capsys):
    """Before: --lr, --weight-decay, --encoder, --distance and --separate-query-network had no help."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("learning rate (default 0.001", "weight decay (default 0.0005", "hash layer: divide-and-encode",
                     "l2 (squared Euclidean; default)", "train a second network for queries",
                     "any integer 1..1024, on purpose"):
        assert expected in text


@pytest.mark.parametrize("bits", ["0", "1025", "x"])
def test_a_code_length_outside_its_range_is_refused_at_parse_time(capsys, bits, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--run", str(tmp_path / "r"), "--data", "digits", "--bits", bits])
    assert exit_.value.code == 2 and "expected a code length 1..1024" in capsys.readouterr().err


def test_dnnh_version(capsys):
    """Before: `dnnh --version` was an unknown option."""
    import dnnh

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"dnnh {dnnh.__version__}"
