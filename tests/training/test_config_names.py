"""The code length is ``nbits``; code and files written with ``bits`` keep working."""

import pytest

from dnnh.config import LOSSES, MINING_STRATEGIES, TrainConfig
from dnnh.nn import DNNH, DivideAndEncode, FullyConnectedEncoder, ModelConfig


def test_old_bits_spellings_still_work():
    assert TrainConfig.from_recipe("modern", bits=12).nbits == 12
    assert TrainConfig(bits=24).bits == 24
    assert TrainConfig(nbits=12).replace(bits=16).nbits == 16
    assert DNNH(12).nbits == DNNH(bits=12).bits == 12
    assert DivideAndEncode(600, 12).nbits == DivideAndEncode(600, bits=12).bits == 12
    assert FullyConnectedEncoder(64, bits=8).nbits == 8
    with pytest.raises(TypeError, match="multiple values"):
        DNNH(12, bits=24)
    with pytest.raises(TypeError, match="once"):
        TrainConfig(nbits=12, bits=12)


def test_a_config_json_written_with_bits_reads_back():
    saved = TrainConfig(nbits=12).to_dict()
    assert "nbits" in saved and "bits" not in saved
    saved["bits"] = saved.pop("nbits")
    assert TrainConfig.from_dict(saved) == TrainConfig(nbits=12)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "12"])
def test_one_check_of_a_code_length(bad):
    for make in (lambda: TrainConfig(nbits=bad), lambda: ModelConfig(nbits=bad), lambda: DNNH(bad),
                 lambda: DivideAndEncode(600, bad)):
        with pytest.raises(ValueError, match=r"nbits \(the code length\) must be a positive integer"):
            make()


def test_model_config_checks_its_architecture_once():
    with pytest.raises(ValueError, match="encoder must be one of"):
        ModelConfig(nbits=12, encoder="conv")
    model = DNNH.from_config(ModelConfig(nbits=12).to_dict())
    assert model.config == ModelConfig(nbits=12)


def test_light_name_lists_match_their_registries():
    from dnnh.baselines import SHALLOW_METHODS
    from dnnh.baselines.catalog import SHALLOW_CATALOG
    from dnnh.config import NIN_BACKBONES
    from dnnh.encoder.backends import BACKENDS
    from dnnh.encoder.names import ENGINES
    from dnnh.miners import STRATEGIES
    from dnnh.nn import PRESETS
    from dnnh.training.objectives import OBJECTIVES

    assert NIN_BACKBONES == tuple(sorted(PRESETS))
    assert ENGINES == tuple(BACKENDS)
    assert {k: (c.__name__, c.supervised) for k, c in SHALLOW_METHODS.items()} == \
        {k: (cls, supervised) for k, (_, cls, supervised) in SHALLOW_CATALOG.items()}

    assert MINING_STRATEGIES == STRATEGIES
    assert LOSSES == tuple(OBJECTIVES)
