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


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def _flag_help(text: str, flag: str) -> str:
    """The help of one flag: from its name to the next flag's."""
    import re

    start = text.index(f" {flag} ")
    following = re.search(r" --?[a-z][a-z-]* ", text[start + len(flag) + 2:])
    return text[start:start + len(flag) + 2 + (following.start() if following else len(text))]


@pytest.mark.parametrize("command", ["train", "bench"])
def test_recipe_defaults_are_printed_with_their_values(capsys, command):
    """Issue 36.16. Before: --epochs, --batch-size and --augment said "(default: the recipe's)" and no value."""
    from dnnh.config import TrainConfig

    text = _help(capsys, command)
    modern, paper = TrainConfig.from_recipe("modern", device="cpu"), TrainConfig.from_recipe("paper", device="cpu")
    assert "the recipe's" not in text
    assert f"default {modern.epochs} in both recipes" in _flag_help(text, "--epochs") and modern.epochs == paper.epochs
    assert f"default {modern.batch_size} in both recipes" in _flag_help(text, "--batch-size")
    augment = _flag_help(text, "--augment")
    pretrained = TrainConfig.from_recipe("modern", device="cpu", backbone="resnet18")
    assert f"modern recipe {modern.augment}, {pretrained.augment} on a pretrained backbone" in augment
    assert f"paper recipe {paper.augment}" in augment
    assert "default: torch's own choice, one per physical CPU core" in _flag_help(text, "--threads")
    assert "(default 0)" in _flag_help(text, "--seed") and "default" in _flag_help(text, "--topk")


def test_every_flag_of_eval_and_index_build_says_what_it_is(capsys):
    """Issue 36.16. Before: eval --db-codes had no help; index build --out was not said to be required."""
    assert "the database's codes file" in _flag_help(_help(capsys, "eval"), "--db-codes")
    assert "default" in _flag_help(_help(capsys, "eval"), "--topk")
    assert "required with the hamming backend (the default)" in _flag_help(_help(capsys, "index", "build"), "--out")


def test_help_is_plain_text_without_sphinx_markup(capsys):
    """Issue 36.16. Before: bench --help showed ':mod:`dnnh.bench.harness`', search/serve/export ``--index``."""
    from dnnh.cli.main import COMMAND_MODULES

    for command in [*([c] for c in COMMAND_MODULES), ["index", "build"], ["index", "add"]]:
        text = _help(capsys, *command)
        assert "`" not in text and ":mod:" not in text and ":class:" not in text, (command, text[:300])
    assert "described in dnnh.bench.harness" in _help(capsys, "bench")


def test_plain_text_keeps_what_the_markup_marked():
    from dnnh.cli.main import plain_text

    assert plain_text("see :class:`~dnnh.config.TrainConfig` and :mod:`dnnh.bench`, ``--index`` or `dnnh eval`") == \
        "see TrainConfig and dnnh.bench, --index or dnnh eval"
