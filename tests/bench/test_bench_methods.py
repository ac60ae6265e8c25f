"""The methods registry, code-length parsing and user errors (a clear message naming what is known)."""

from __future__ import annotations

import pytest

from dnnh.bench import METHODS, parse_bits, resolve_method, resolve_methods, run_bench
from dnnh.cli.main import main

DEEP = [name for name, m in METHODS.items() if m.kind == "deep"]


def test_unknown_method_lists_the_known_ones(tmp_path, digits, tiny_bench):
    with pytest.raises(ValueError) as info:
        run_bench(digits, tmp_path / "out", ["lsh", "dnnh-bogus"], [12], **tiny_bench())
    message = str(info.value)
    assert "'dnnh-bogus'" in message
    for name in ("lsh", "itq", "ksh", "dnnh", "dnnh-paper", "dnnh-random", "dpsh", "classifier", "cnnh",
                 "dnnh-eps<X>", "dnnh-margin<X>", "@features"):
        assert name in message, name
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_cli_unknown_method_is_one_line(tmp_path, capsys):
    code = main(["bench", "--data", "digits", "--methods", "itq,nope", "--bits", "12", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "unknown method 'nope'" in err and "known methods" in err and "dnnh-paper" in err


@pytest.mark.parametrize("name, fields", [
    ("dnnh", {"recipe": "modern", "triplets": "all", "encoder": "divide-and-encode", "eps": None, "loss": "triplet"}),
    ("dnnh-paper", {"recipe": "paper", "triplets": "random", "optimizer": "sgd", "schedule": "step", "eps": 0.1}),
    ("dnnh-fc", {"encoder": "fc", "recipe": "modern"}),
    ("dnnh-threshold", {"eps": 0.1, "recipe": "modern"}),
    ("dnnh-random", {"triplets": "random", "optimizer": "adamw", "schedule": "cosine", "recipe": "modern"}),
    ("dnnh-eps0.05", {"eps": 0.05}),
    ("DNNH-EPS0.250", {"eps": 0.25}),
    ("dnnh-margin4", {"margin": 4.0, "eps": None, "recipe": "modern"}),
    ("dpsh", {"loss": "dpsh"}), ("dsh", {"loss": "dsh"}), ("csq", {"loss": "csq"}),
    ("classifier", {"loss": "classifier"}), ("cnnh", {"loss": "cnnh"}),
])
def test_deep_methods_map_to_configs(name, fields):
    config = resolve_method(name).train_config(24, {"backbone": "nin-cifar", "epochs": 3})
    assert config.bits == 24 and config.backbone == "nin-cifar" and config.epochs == 3
    for key, value in fields.items():
        assert getattr(config, key) == value, key


def test_names_are_canonical_and_patterns_checked():
    assert resolve_method("DNNH-EPS0.250").name == "dnnh-eps0.25"
    assert resolve_method("itq@features").kind == "features" and resolve_method("itq@features").shallow == "itq"
    assert resolve_method("KSH").kind == "shallow"
    with pytest.raises(ValueError, match=r"\[0, 0.5\]"):
        resolve_method("dnnh-eps0.7")
    assert resolve_method("dnnh-margin4.0").name == "dnnh-margin4"
    with pytest.raises(ValueError, match="margin must be positive"):
        resolve_method("dnnh-margin0")
    with pytest.raises(ValueError, match="unknown method"):
        resolve_method("dnnh@features")
    with pytest.raises(ValueError, match="add 'dnnh'"):
        resolve_methods("lsh,itq@features")
    assert [m.name for m in resolve_methods("lsh, itq,lsh")] == ["lsh", "itq"]


def test_every_deep_method_shares_the_backbone_and_a_method_keeps_its_own_fields():
    configs = [resolve_method(n).train_config(12, {"backbone": "nin-cifar", "input_size": 16}) for n in DEEP]
    assert {(c.backbone, c.input_size) for c in configs} == {("nin-cifar", 16)}
    assert len({(c.recipe, c.encoder, c.eps, c.triplets, c.loss) for c in configs}) == len(DEEP)
    with pytest.raises(ValueError, match="sets them itself"):
        resolve_method("dnnh-threshold").train_config(12, {"eps": 0.2})


def test_parse_bits():
    assert parse_bits("12,24, 48,12") == [12, 24, 48]
    assert parse_bits([32]) == [32]
    for bad in ("12,x", "0", "-4", "", "1.5"):
        with pytest.raises(ValueError, match="bits"):
            parse_bits(bad)
