"""Training on a device (issue 22), tested on the CPU: placement through ``device=``, a GPU run's
checkpoint resumed here (its storages tagged ``cuda:0``, as torch writes them on a GPU), the
device kept out of what a run is, and the CUDA path itself marked and skipped without a GPU."""

import io
import json
from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import load_file

from dnnh import devices
from dnnh.config import DeviceError
from dnnh.encoder import Encoder
from dnnh.runs import Run
from dnnh.training import train as train_module
from dnnh.training.train import OPTIONAL_ENTRIES, on_cpu, train

from support.interrupts import Interrupt, stop_after


@pytest.fixture
def spied_objective(monkeypatch):
    """The devices of every tensor the objective is called with, epoch after epoch."""
    seen = []
    real = train_module.make_objective

    def make(*args, **kwargs):
        objective = real(*args, **kwargs)
        forward = objective.forward

        def spy(*inputs):
            seen.append({t.device for t in inputs if isinstance(t, torch.Tensor)})
            return forward(*inputs)
        objective.forward = spy
        return objective
    monkeypatch.setattr(train_module, "make_objective", make)
    return seen


def test_device_cpu_places_model_batches_and_loss_and_records_it(tmp_path, digits, small_split, tiny_config,
                                                                  spied_objective):
    result = train(tiny_config.replace(epochs=1, device="auto"), digits, small_split, tmp_path / "r",
                   progress=False, device="cpu")
    assert spied_objective and all(d == {torch.device("cpu")} for d in spied_objective)
    assert {p.device for p in result.model.parameters()} == {torch.device("cpu")}
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert saved["device"] == "cpu" and saved["compile"] is False  # config.json says where it ran


def test_a_missing_gpu_is_one_line_before_any_file_is_written(tmp_path, digits, small_split, tiny_config,
                                                              monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError, match="no usable CUDA GPU") as err:
            train(tiny_config, digits, small_split, tmp_path / "r", progress=False, device=device)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


@contextmanager
def storages_tagged(location: str):
    """torch.save writes every storage as if it lived on ``location`` (what a GPU run's file says)."""
    entry = (0, lambda obj: location if isinstance(obj, torch.storage.UntypedStorage) else None, lambda *a: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)


def test_a_gpu_runs_checkpoint_resumes_on_the_cpu_and_equals_an_uninterrupted_run(tmp_path, digits, small_split,
                                                                                   tiny_config):
    config = tiny_config.replace(erase=0.5, augment="shift-flip", device="cpu")
    full = train(config, digits, small_split, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, digits, small_split, tmp_path / "cut", progress=False, on_epoch_end=stop_after(2))
    # Make the interrupted run look trained on a GPU: config.json says cuda:0, every storage of the
    # checkpoint is tagged cuda:0 (torch.load without map_location refuses it on this machine).
    state_file = tmp_path / "cut" / "checkpoint" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    buf = io.BytesIO()
    with storages_tagged("cuda:0"):
        torch.save(state, buf)
    state_file.write_bytes(buf.getvalue())
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(state_file, weights_only=True)
    cfg_file = tmp_path / "cut" / "config.json"
    saved = json.loads(cfg_file.read_text())
    saved["config"]["device"] = "cuda:0"
    cfg_file.write_text(json.dumps(saved))
    assert Run.open(tmp_path / "cut").config.device == "cuda:0"  # opens here without a GPU

    resumed = train(config, digits, small_split, tmp_path / "cut", resume=True, progress=False)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    codes = Encoder.from_run(tmp_path / "cut", device="cpu").encode_items(digits, small_split.query)
    assert codes.shape == (len(small_split.query), config.nbits)


def test_resume_may_change_the_device_but_nothing_that_decides_the_run(tmp_path, digits, small_split, tiny_config):
    config = tiny_config.replace(epochs=1, device="cpu")
    train(config, digits, small_split, tmp_path / "r", progress=False)
    run = Run.open(tmp_path / "r")
    run.check_continues(config.replace(device="cuda:3", compile=True), small_split)  # placement only
    with pytest.raises(ValueError, match="seed: saved 0, given 1"):
        run.check_continues(config.replace(device="cuda:3", seed=1), small_split)


def test_checkpoints_hold_cpu_tensors_and_optional_entries_may_be_absent():
    nested = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": {"c": torch.arange(3)}, "d": "text"}
    moved = on_cpu(nested)
    assert moved["a"][0].device.type == "cpu" and isinstance(moved["a"][1], tuple) and moved["d"] == "text"
    assert set(OPTIONAL_ENTRIES) == {"cuda_rng", "grad_scaler"}


def test_an_augmentation_state_of_another_generator_restarts_the_stream_deterministically():
    def state_with(aug_state):
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        st = train_module.TrainingState(model, torch.nn.Module(), opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1),
                                        None, torch.Generator())
        st._set_aug_state(aug_state)
        return torch.rand(4, generator=st.aug_gen)
    philox = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)  # 16 bytes: CUDA's
    assert torch.equal(state_with(philox), state_with(philox))
    assert not torch.equal(state_with(philox), state_with(philox + 1))
    same = torch.Generator().manual_seed(3)
    want = torch.Generator().manual_seed(3)
    assert torch.equal(state_with(same.get_state()), torch.rand(4, generator=want))  # a CPU state is set as is


def test_compile_falls_back_in_one_line_at_the_first_step(tmp_path, digits, small_split, tiny_config, monkeypatch):
    said = []

    def no_compiler(graph, example_inputs):
        raise RuntimeError("no compiler")
    monkeypatch.setattr(devices, "COMPILE_BACKEND", no_compiler)
    result = train(tiny_config.replace(epochs=1, compile=True), digits, small_split, tmp_path / "r",
                   progress=False, log=said.append)
    assert said[0] == "--compile: cannot compile here (no compiler); training uncompiled" and result.history


def test_compile_captures_the_nin_network_at_the_real_batch_shape(tmp_path, digits, small_split, tiny_config,
                                                                  monkeypatch):
    """Issue 34.2: ``Module.compile()`` on a NIN backbone (an nn.Sequential) captured no graph, silently; a
    two-image probe then made the batch dimension dynamic."""
    inputs = []

    def capture(graph, example_inputs):  # dynamo's captured graph, run eager: what inductor would be given
        inputs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return graph.forward
    monkeypatch.setattr(devices, "COMPILE_BACKEND", capture)
    config = tiny_config.replace(epochs=1, compile=True, backbone="nin-small")
    train(config, digits, small_split, tmp_path / "r", progress=False)
    assert inputs, "--compile captured no graph"
    images = [shape for graph in inputs for shape in graph if len(shape) == 4 and shape[1:] == (1, 8, 8)]
    assert images and {shape[0] for shape in images} == {config.batch_size}  # the real batch, no probe's 2
    assert all(isinstance(d, int) for graph in inputs for shape in graph for d in shape)  # static shapes
    weights = [shape for graph in inputs for shape in graph if shape == (32, 1, 5, 5)]
    assert weights, "the backbone's first convolution is not in the graph"


@pytest.mark.cuda
def test_training_on_the_gpu_resumes_on_the_cpu(tmp_path, digits, small_split, tiny_config):
    config = tiny_config.replace(device="cuda", precision="auto")
    with pytest.raises(Interrupt):
        train(config, digits, small_split, tmp_path / "r", progress=False, on_epoch_end=stop_after(2))
    state = torch.load(tmp_path / "r" / "checkpoint" / "state.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())
    assert "cuda_rng" in state
    resumed = train(config.replace(device="cpu"), digits, small_split, tmp_path / "r", resume=True,
                    progress=False)
    assert len(resumed.history) == config.epochs and resumed.best_val_map > 0.2
    gpu = Encoder.from_run(tmp_path / "r", device="cuda").encode_items(digits, small_split.query)
    cpu = Encoder.from_run(tmp_path / "r", device="cpu").encode_items(digits, small_split.query)
    assert (gpu != cpu).mean() < 0.02  # the same weights; only outputs within rounding of 0.5 may differ


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, digits):
    """A finished tiny run trained on the CPU, shared by the encoder-device tests."""
    from dnnh.data.splits import paper_split
    from dnnh.training.config import TrainConfig

    split = paper_split(digits.labels, queries_per_class=5, train_per_class=30, val_fraction=0.2, seed=0)
    config = TrainConfig.from_recipe("modern", bits=12, input_size=8, epochs=1, batch_size=40, per_class=4,
                                     num_workers=0, threads=1, device="cpu", precision="fp32")
    return train(config, digits, split, tmp_path_factory.mktemp("encode") / "r", progress=False).run


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "CUDA:0"])
def test_torch_bf16_on_the_gpu_takes_any_name_of_it(cpu_run, digits, monkeypatch, asked):
    """Issue 34.5: ``--engine torch-bf16 --device cuda`` was refused: torch.device("cuda", 0) != torch.device("cuda")."""
    from support.fake_cuda import fake_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with fake_gpu(monkeypatch):
        encoder = Encoder.from_run(cpu_run.path, engine="torch-bf16", device=asked)
        codes = encoder.encode_items(digits, cpu_run.split.query[:20])
    assert encoder.backend.name == "torch-bf16" and encoder.device == torch.device("cuda", 0)
    assert "on cuda:0 (faked H100" in encoder.reason and codes.shape == (20, 12)


def test_auto_on_the_gpu_is_the_torch_engine_there(cpu_run, monkeypatch):
    """Issue 34.5: ``--engine auto --device cuda`` compared CPU engines only, then refused the device."""
    from support.fake_cuda import fake_gpu

    with fake_gpu(monkeypatch):
        encoder = Encoder.from_run(cpu_run.path, engine="auto", device="cuda")
    assert encoder.backend.name == "torch" and encoder.device == torch.device("cuda", 0)
    assert encoder.reason.startswith("auto chose torch: the GPU")
    with pytest.raises(ValueError, match="applies to the torch engines"):  # a CPU engine asked onto a GPU
        with fake_gpu(monkeypatch):
            Encoder.from_run(cpu_run.path, engine="onnxruntime", device="cuda")


def test_a_gpu_run_is_scored_on_its_gpu_after_training(tmp_path, digits, small_split, tiny_config, monkeypatch):
    """Issue 34.4: ``dnnh train`` scored a GPU run on the CPU (``Encoder.from_run(run)`` without the device)."""
    from dnnh import evaluation

    asked = []
    real = evaluation.Encoder.from_run

    def spy(run, *args, **kwargs):
        asked.append(kwargs.get("device"))
        return real(run, *args, **kwargs)
    monkeypatch.setattr(evaluation.Encoder, "from_run", spy)
    from support.fake_cuda import fake_gpu

    with fake_gpu(monkeypatch):
        result = train(tiny_config.replace(epochs=1, device="cuda"), digits, small_split, tmp_path / "r",
                       progress=False)
        evaluation.evaluate_run(result.run, digits, write=False)
    assert asked and torch.device(asked[-1]) == torch.device("cuda", 0)
    monkeypatch.setattr(devices, "cuda_available", lambda: False)  # the same run opened without that GPU
    evaluation.evaluate_run(Run.open(tmp_path / "r"), digits, write=False)
    assert torch.device(asked[-1]) == torch.device("cpu")


CLI_TINY = ["--data", "digits", "--protocol", "paper", "--queries-per-class", "5", "--train-per-class", "30",
            "--bits", "12", "--input-size", "8", "--batch-size", "40", "--threads", "1", "--workers", "0",
            "--epochs", "1", "--quiet"]


def _as_if_trained_on(run_dir, device: str, precision: str) -> None:
    """Rewrite a CPU run's config.json as a run trained on ``device`` in ``precision`` would have it."""
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    saved["config"].update(device=device, precision=precision)
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize("trained_in", ["fp16", "bf16"])
def test_the_command_line_resumes_a_gpu_run_on_the_cpu_without_repeating_precision(tmp_path, trained_in, capsys):
    """Issue 34.6: ``--precision auto`` resolved again for the new device and the resume was refused
    (precision: saved fp16, given fp32), against README's promise that the device is not part of a run."""
    from dnnh.cli.main import main

    run_dir = tmp_path / "r"
    assert main(["train", *CLI_TINY, "--run", str(run_dir), "--device", "cpu"]) == 0
    _as_if_trained_on(run_dir, "cuda:0", trained_in)  # a T4 (fp16) or an A100 (bf16) ran auto
    capsys.readouterr()
    assert main(["train", *CLI_TINY, "--run", str(run_dir), "--resume", "--device", "cpu"]) == 0
    assert "MAP (whole database)" in capsys.readouterr().out


def test_the_command_line_resumes_a_cpu_run_on_a_gpu_without_repeating_precision(tmp_path, monkeypatch, capsys):
    from dnnh.cli.main import main

    from support.fake_cuda import fake_gpu

    run_dir = tmp_path / "r"
    assert main(["train", *CLI_TINY, "--run", str(run_dir), "--device", "cpu", "--precision", "fp32"]) == 0
    with fake_gpu(monkeypatch):  # auto resolves to bf16 on the faked H100
        assert main(["train", *CLI_TINY, "--run", str(run_dir), "--resume", "--device", "cuda"]) == 0
    capsys.readouterr()
    assert main(["train", *CLI_TINY, "--run", str(run_dir), "--resume", "--device", "cpu", "--bits", "16"]) != 0
    assert "nbits: saved 12, given 16" in capsys.readouterr().err  # what decides the run still may not change


def test_tf32_is_not_switched_on_for_the_whole_process(monkeypatch):
    """Issue 34.7: TF32 matmuls were switched on process-wide, for the hash head, the loss and every later encode."""
    matmul = torch.backends.cuda.matmul
    before = (matmul.allow_tf32, matmul.fp32_precision)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # put back afterwards
    try:
        devices.speed_switches(torch.device("cuda", 0))
        assert (matmul.allow_tf32, matmul.fp32_precision) == before == (False, "none")  # IEEE fp32 matmuls
        assert torch.backends.cudnn.benchmark  # cuDNN's autotuner stays on for a GPU run
        devices.speed_switches(torch.device("cuda", 0), deterministic=True)
        assert not torch.backends.cudnn.benchmark
    finally:
        matmul.fp32_precision = before[1]


def _saves(monkeypatch) -> list[int]:
    saved = []
    real = Run.save_checkpoint

    def spy(run, model, state):
        saved.append(state["epoch"] + 1)
        return real(run, model, state)
    monkeypatch.setattr(Run, "save_checkpoint", spy)
    return saved


def test_checkpoints_at_most_every_interval_and_after_the_last_epoch_and_resume_stays_exact(
        tmp_path, digits, small_split, tiny_config, monkeypatch):
    """Issue 34.8: a checkpoint every epoch took as long as an epoch on a GPU."""
    config = tiny_config.replace(epochs=3, erase=0.5)
    full = train(config, digits, small_split, tmp_path / "full", progress=False)
    saved = _saves(monkeypatch)
    with pytest.raises(Interrupt):  # killed after epoch 2, before any checkpoint was due
        train(config, digits, small_split, tmp_path / "cut", progress=False, on_epoch_end=stop_after(2),
              checkpoint_every_s=3600)
    assert saved == [] and not (tmp_path / "cut" / "checkpoint" / "state.pt").exists()
    resumed = train(config, digits, small_split, tmp_path / "cut", resume=True, progress=False,
                    checkpoint_every_s=3600)
    assert saved == [3]  # the last epoch only
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_gpu_run_checkpoints_by_time_not_every_epoch(tmp_path, digits, small_split, tiny_config, monkeypatch):
    from support.fake_cuda import fake_gpu

    saved = _saves(monkeypatch)
    with fake_gpu(monkeypatch):
        train(tiny_config.replace(epochs=3, device="cuda"), digits, small_split, tmp_path / "r", progress=False)
    assert saved == [3]  # three epochs of seconds: one checkpoint (before: one an epoch)
    saved.clear()
    train(tiny_config.replace(epochs=3), digits, small_split, tmp_path / "cpu", progress=False)
    assert saved == [1, 2, 3]  # the CPU keeps one an epoch


def test_deterministic_switches_torch_for_the_run_only_and_is_recorded(tmp_path, monkeypatch):
    """Issue 34.10: a switch for same-seed equality on a GPU (cuDNN's fixed algorithms, deterministic kernels)."""
    from dnnh.cli.main import main

    seen = []
    real = train_module.one_epoch

    def spy(setup, *args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), setup.config.deterministic))
        return real(setup, *args, **kwargs)
    monkeypatch.setattr(train_module, "one_epoch", spy)
    assert main(["train", *CLI_TINY, "--run", str(tmp_path / "r"), "--device", "cpu", "--deterministic"]) == 0
    assert seen == [(True, True)] and not torch.are_deterministic_algorithms_enabled()  # the process's own again
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["deterministic"] is True
    assert main(["train", *CLI_TINY, "--run", str(tmp_path / "r"), "--device", "cpu", "--resume"]) == 0  # runtime
