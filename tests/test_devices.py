"""Naming devices, the arithmetic each gets, and the one-line refusals (dnnh.devices), on the CPU.

CUDA is simulated where only its answers matter (availability, capability, device count); the
tests that need a real GPU are marked ``cuda`` and skipped without one.
"""

import pytest
import torch

from dnnh import devices
from dnnh.config import resolve_precision
from dnnh.devices import DeviceError, resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two CUDA GPUs as far as dnnh.devices asks (no tensor is ever put on them)."""
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    def capability(major, minor):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
    capability(9, 0)
    return capability


def test_cpu_and_auto_without_cuda_are_the_cpu_and_auto_says_so_once(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    said = []
    devices._announced.clear()
    assert resolve_device("auto", announce=said.append) == torch.device("cpu")
    assert resolve_device(None, announce=said.append) == torch.device("cpu")
    assert said == ["device auto: cpu"]


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_is_one_line_naming_the_way_out(no_cuda, spec):
    with pytest.raises(DeviceError) as err:
        resolve_device(spec)
    message = str(err.value)
    assert "\n" not in message and "no usable CUDA GPU" in message and "--device cpu" in message
    assert isinstance(err.value, ValueError)  # the CLI's one-line handling of bad input applies


@pytest.mark.parametrize("spec", ["gpu", "cpu:1", "cuda:x", "mps", "", "cpu ", " cuda", "cuda:0\n", "auto\t"])
def test_unknown_devices_are_refused_with_what_is_accepted(spec):
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["", "cpu ", " auto"])
def test_the_command_line_refuses_what_is_not_a_device_name_in_one_line(spec, capsys):
    """Issue 36.10: ``--device ''`` meant auto and ``--device 'cpu '`` meant cpu, without a word."""
    from dnnh.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["search", "x.png", "--run", "no-such-run", "--device", spec])
    code = exit_.value.code
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "device must be one of" in err and repr(spec) in err


def test_cuda_index_past_the_gpus_is_refused(fake_cuda):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="has 2 CUDA GPU"):
        resolve_device("cuda:2")


def test_precision_auto_per_device(fake_cuda, monkeypatch):
    import dnnh.config as config_module

    assert resolve_precision("auto", "cuda:0") == "bf16"  # Hopper
    fake_cuda(8, 0)
    assert resolve_precision("auto", "cuda:0") == "bf16"  # Ampere: the first with bf16
    fake_cuda(7, 5)
    assert resolve_precision("auto", "cuda:1") == "fp16"  # Turing: fp16 with a GradScaler
    assert resolve_precision("fp32", "cuda:0") == "fp32"
    monkeypatch.setattr(devices, "describe_device", lambda device: "cuda:0 (T4)")
    with pytest.raises(ValueError, match="compute capability 8.0"):
        devices.check_precision(torch.device("cuda", 0), "bf16")  # checked where the run starts
    devices.check_precision(torch.device("cuda", 0), "fp16")
    for fast in (True, False):  # the CPU keeps its rule (dnnh.machine.bf16_is_fast)
        monkeypatch.setattr(config_module, "bf16_is_fast", lambda fast=fast: fast)
        assert resolve_precision("auto", "cpu") == ("bf16" if fast else "fp32")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        devices.check_precision(torch.device("cpu"), "fp16")


def test_the_config_records_a_resolved_device_and_opens_a_gpu_run_without_a_gpu(no_cuda):
    from dnnh.config import RUNTIME_FIELDS, TrainConfig

    assert TrainConfig().device == "cpu" and TrainConfig(device="auto").device == "cpu"
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        TrainConfig(device="cuda")
    saved = {**TrainConfig(precision="fp32").to_dict(), "device": "cuda:1", "precision": "fp16"}
    opened = TrainConfig.from_dict(saved)  # a GPU run's config.json, read on this CPU machine
    assert (opened.device, opened.precision) == ("cuda:1", "fp16")
    assert "device" in RUNTIME_FIELDS and "device" not in opened.decisive()  # not part of what the run is
    old = TrainConfig().to_dict()
    del old["device"], old["compile"]
    assert TrainConfig.from_dict(old).device == "cpu"  # configs before issue 22 trained on the CPU
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        TrainConfig(device="gpu")


def test_scaler_only_for_fp16_on_cuda_and_autocast_off_for_fp32():
    cpu = torch.device("cpu")
    for precision in ("fp32", "bf16"):
        assert not devices.grad_scaler(cpu, precision).is_enabled()
    with devices.autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with devices.autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_processes_get_their_gpu_and_nccl_while_the_cpu_keeps_gloo(fake_cuda):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert devices.distributed_backend(cpu) == "gloo" and devices.distributed_backend(cuda) == "nccl"
    assert devices.local_device(cpu, 3) == cpu
    assert devices.local_device(cuda, 1) == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="at most 2 processes"):
        devices.local_device(cuda, 2)


def test_the_cpu_generator_draws_what_torch_generator_did():
    a = devices.generator(torch.device("cpu"), 5)
    b = torch.Generator().manual_seed(5)
    assert torch.equal(torch.rand(10, generator=a), torch.rand(10, generator=b))


def test_compile_falls_back_to_eager_in_one_line_when_it_cannot_compile(monkeypatch):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    want = module(x)
    said = []

    def no_compiler(graph, example_inputs):
        raise RuntimeError("no compiler here\nsecond line of a long trace")
    monkeypatch.setattr(devices, "COMPILE_BACKEND", no_compiler)
    forward = devices.CompiledForward(module, log=said.append)
    assert torch.equal(forward(x), want) and forward.state == "eager"  # the same batch, eager
    assert said == ["--compile: cannot compile here (no compiler here); training uncompiled"]
    assert torch.equal(forward(x), want) and len(said) == 1  # said once; the module itself never changed
    assert module._compiled_call_impl is None


def test_cpu_describes_itself_and_has_no_gpu_figures(no_cuda):
    cpu = torch.device("cpu")
    assert devices.describe_device(cpu) == "cpu" and devices.device_name(cpu) == "cpu"
    assert devices.gpu_properties() is None and devices.peak_memory_gib(cpu) is None


@pytest.mark.cuda
def test_a_real_gpu_describes_itself():
    props = devices.gpu_properties(0)
    assert props["name"] and float(props["capability"]) >= 3.0 and props["memory_gib"] > 0
    assert devices.describe_device(torch.device("cuda")).startswith("cuda:0 (")
    assert resolve_precision("auto", "cuda") in ("bf16", "fp16")
