import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dnnh.encoder import Encoder
from dnnh.nn import DNNH
from dnnh.runs import Run
from dnnh.training.config import TrainConfig
from dnnh.training.train import train

from support.interrupts import Interrupt, stop_after


@pytest.mark.parametrize("recipe_overrides", [{}, {"erase": 0.5, "augment": "shift-flip"},
                                              {"triplets": "random", "optimizer": "sgd", "schedule": "step"}])
def test_resume_equals_uninterrupted(tmp_path, digits, small_split, tiny_config, recipe_overrides):
    config = tiny_config.replace(**recipe_overrides)
    full = train(config, digits, small_split, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, digits, small_split, tmp_path / "cut", progress=False, on_epoch_end=stop_after(2))
    resumed = train(config, digits, small_split, tmp_path / "cut", resume=True, progress=False)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    last_full, last_cut = (torch.load(tmp_path / d / "checkpoint" / "state.pt", weights_only=True)["model"]
                           for d in ("full", "cut"))
    assert last_full.keys() == last_cut.keys() and all(torch.equal(last_full[k], last_cut[k]) for k in last_full)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [h["val_map"] for h in full.history] == [h["val_map"] for h in resumed.history]


def test_fresh_run_refuses_to_overwrite_and_resume_checks_config(tmp_path, digits, small_split, tiny_config):
    config = tiny_config.replace(epochs=1)
    train(config, digits, small_split, tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(config, digits, small_split, tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match=r"same training config.*margin: saved None, given 3\.0"):
        train(config.replace(margin=3.0), digits, small_split, tmp_path / "r", resume=True, progress=False)


def test_run_directory_contents_and_reload(tmp_path, digits, small_split, tiny_config):
    result = train(tiny_config, digits, small_split, tmp_path / "r", progress=False)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert TrainConfig.from_dict(saved["config"]) == tiny_config
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert len(history["history"]) == 3
    assert history["best_val_map"] == max(h["val_map"] for h in history["history"])
    run = Run.open(tmp_path / "r")
    assert run.model_config == tiny_config.model_config(1) and run.source.data == "digits"
    x = result.prep(digits.images[:10])
    assert torch.equal(run.load_model().encode(x), result.model.encode(x))
    assert np.array_equal(run.split.query, small_split.query)
    # The encoder of the reopened run gives the trained model's codes, through every input form.
    encoder = Encoder.from_run(tmp_path / "r", num_workers=0)
    want = result.model.encode(x).numpy()
    assert np.array_equal(encoder.encode_images(digits.images[:10]), want)
    assert np.array_equal(encoder.encode_items(digits, np.arange(10)), want)


def test_training_beats_untrained_network(tmp_path, digits, small_split, tiny_config):
    from dnnh.metrics import mean_average_precision

    config = tiny_config.replace(epochs=8, input_size=16)
    result = train(config, digits, small_split, tmp_path / "r", progress=False)
    torch.manual_seed(config.seed)
    untrained = DNNH.from_config(config.model_config(1)).eval()
    labels = digits.labels

    def score(model):
        encoder = Encoder(model, result.prep, num_workers=0)
        q = encoder.encode_items(digits, small_split.query, role="query")
        d = encoder.encode_items(digits, small_split.database)
        return mean_average_precision(q, d, labels[small_split.query], labels[small_split.database])

    assert score(result.model) > score(untrained) + 0.1


def test_config_validation():
    with pytest.raises(ValueError, match="triplets must be one of"):
        TrainConfig(triplets="hardest")
    with pytest.raises(ValueError, match="recipe"):
        TrainConfig.from_recipe("fast")
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({"bits": 12, "colour": "red"})
    assert TrainConfig(bits=48).triplet_margin == 4.0 and TrainConfig(bits=12).triplet_margin == 1.0
    assert TrainConfig(bits=48, margin=2.5).triplet_margin == 2.5
    assert TrainConfig.from_recipe("paper", bits=48).triplet_margin == 1.0  # the paper's margin at every q
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TrainConfig(margin=-1.0)
    with pytest.raises(ValueError, match="val_every must be at least 1"):
        TrainConfig(val_every=0)
    with pytest.raises(ValueError, match=r"erase must be a probability in \[0, 1\], got 1.5"):
        TrainConfig(erase=1.5)
    paper = TrainConfig.from_recipe("paper")
    assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay, paper.triplets) == \
        ("sgd", 1e-3, 0.9, 5e-4, "random")


def test_decisive_fields_resolve_defaults_and_drop_what_is_never_read():
    triplet = TrainConfig(bits=48)
    assert triplet.decisive()["margin"] == 4.0 and triplet.decisive() == TrainConfig(bits=48, margin=4.0).decisive()
    assert triplet.decisive() != TrainConfig(bits=48, margin=2.0).decisive()
    assert "threads" not in triplet.decisive() and triplet.decisive() == triplet.replace(threads=3).decisive()
    # AdamW never reads momentum, no threshold never reads the anneal share: changing them decides nothing.
    assert triplet.decisive() == triplet.replace(momentum=0.5, eps_anneal=0.3).decisive()
    assert triplet.replace(eps=0.1).decisive() != triplet.replace(eps=0.1, eps_anneal=0.3).decisive()
    sgd = triplet.replace(optimizer="sgd")
    assert sgd.decisive() != sgd.replace(momentum=0.5).decisive()
    # The later losses never read the triplet fields.
    cls = TrainConfig(bits=48, loss="classifier")
    assert cls.decisive() == cls.replace(margin=2.0, smooth_loss=True, distance="dot", triplets="hard").decisive()
    assert cls.decisive() != cls.replace(per_class=5).decisive()
    # Random triplets are not class-balanced: per_class is unread there, but read by mined batches.
    rnd = triplet.replace(triplets="random")
    assert rnd.decisive() == rnd.replace(per_class=5).decisive()
    assert triplet.decisive() != triplet.replace(per_class=5).decisive()
    assert triplet.replace(augment="none").decisive() == triplet.replace(augment="none", max_shift=4).decisive()
    # A reduced view reads back to the same view (old and new bench entries compare on it).
    assert TrainConfig.from_dict(cls.decisive()).decisive() == cls.decisive()


def test_run_of_another_format_is_refused_in_one_line(tmp_path, digits, small_split, tiny_config):
    train(tiny_config.replace(epochs=1), digits, small_split, tmp_path / "r", progress=False)
    config_path = tmp_path / "r" / "config.json"
    saved = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**saved, "format": "dnnh-run/99"}))
    with pytest.raises(ValueError, match=r"format 'dnnh-run/99'; this dnnh reads"):
        Run.open(tmp_path / "r")


def test_run_of_format_1_still_opens(tmp_path, digits, small_split, tiny_config):
    """A run written before the model config and data source moved into config.json."""
    train(tiny_config.replace(epochs=1), digits, small_split, tmp_path / "r", progress=False)
    config_path = tmp_path / "r" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["model"], saved["dataset"]["source"]
    config_path.write_text(json.dumps({**saved, "format": "dnnh-run/1"}))
    (tmp_path / "r" / "data.json").write_text(json.dumps({"data": "digits", "root": None, "skip_corrupt": False}))
    run = Run.open(tmp_path / "r")
    assert run.model_config == tiny_config.model_config(1)
    assert run.source.data == "digits" and len(run.load_dataset()) == len(digits)
    run.load_model()


def test_edited_config_gives_one_clear_error(tmp_path, digits, small_split, tiny_config):
    train(tiny_config.replace(epochs=1), digits, small_split, tmp_path / "r", progress=False)
    config_path = tmp_path / "r" / "config.json"
    saved = json.loads(config_path.read_text())
    saved["model"]["nbits"] = 24
    config_path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"do not fit the model its config describes \(was config.json edited\?\)"):
        Run.open(tmp_path / "r").load_model()


def test_model_rebuilds_from_its_config():
    model = DNNH(24, backbone="nin-small", in_channels=1, encoder="fc", eps=None, batchnorm=True)
    rebuilt = DNNH.from_config(model.config.to_dict())
    assert rebuilt.config == model.config and rebuilt.nbits == rebuilt.bits == 24
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="unknown model config keys"):
        DNNH.from_config({"nbits": 12, "depth": 3})


def test_a_run_of_a_loss_reformed_since_is_refused_on_resume(tmp_path, digits, small_split, tiny_config):
    config = tiny_config.replace(epochs=2, loss="dpsh")
    with pytest.raises(Interrupt):
        train(config, digits, small_split, tmp_path / "r", progress=False, on_epoch_end=stop_after(1))
    config_path = tmp_path / "r" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["config"]["eta"]  # as written before DPSH's quantisation weight became per element
    config_path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="trained with the dpsh loss before issue 15.*cannot be continued"):
        train(config, digits, small_split, tmp_path / "r", resume=True, progress=False)
    Run.open(tmp_path / "r").load_model()  # still readable and scorable


def test_bf16_training_learns_and_records_its_precision(tmp_path, digits, small_split, tiny_config):
    from dnnh.training.config import resolve_precision

    config = tiny_config.replace(epochs=4, input_size=16, precision="bf16")
    result = train(config, digits, small_split, tmp_path / "bf16", progress=False)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["config"]["precision"] == "bf16"
    assert result.best_val_map > 0.3  # an untrained network scores about 0.1 on ten classes
    assert resolve_precision("auto") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("fast", [True, False])
def test_default_precision_is_auto_resolved_where_the_config_is_made(monkeypatch, fast):
    import dnnh.config as config_module

    monkeypatch.setattr(config_module, "bf16_is_fast", lambda: fast)
    want = "bf16" if fast else "fp32"
    assert TrainConfig().precision == want
    assert TrainConfig.from_recipe("modern").precision == want
    assert TrainConfig.from_recipe("modern", precision="fp32").precision == "fp32"
    assert TrainConfig.from_recipe("paper").precision == "fp32"  # the paper's arithmetic
    assert TrainConfig().replace(precision="auto").to_dict()["precision"] == want  # never saved as "auto"
    # A config saved before the field existed trained in fp32, whatever this CPU would pick now.
    saved = TrainConfig(precision="bf16").to_dict()
    del saved["precision"]
    assert TrainConfig.from_dict(saved).precision == "fp32"
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_a_checkpoint_holding_code_is_refused_without_torchs_advice_to_run_it(tmp_path, digits, small_split,
                                                                              tiny_config):
    import os

    train(tiny_config.replace(epochs=1), digits, small_split, tmp_path / "r", progress=False)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "r" / "checkpoint" / "state.pt")
    with pytest.raises(ValueError, match="could run code: refused") as info:
        Run.open(tmp_path / "r").load_checkpoint(Run.open(tmp_path / "r").new_model())
    assert "weights_only" not in str(info.value) and not (tmp_path / "pwned").exists()
