"""A pretrained-backbone run end to end from the command line: `dnnh train --backbone resnet18
--backbone-weights FILE --freeze-backbone` keeps the file's weights, and `dnnh export` of the run
(224 px pipeline at small scale: resize 40, centre crop 32, inside the graph) gives the codes
`dnnh encode` wrote, from the raw uint8 image files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from dnnh.cli.main import main  # noqa: E402
from dnnh.codes import CodeSet  # noqa: E402
from dnnh.data.images import read_image  # noqa: E402
from dnnh.export import read_metadata  # noqa: E402
from dnnh.nn import build_backbone  # noqa: E402
from dnnh.runs import CODES, Run  # noqa: E402


@pytest.fixture(scope="module")
def folder(digits, tmp_path_factory):
    """12 RGB images a class at 40x40 (digits scaled up 5x, tinted, noisy): the resize side already."""
    root = tmp_path_factory.mktemp("pretrained") / "images"
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i, j in enumerate(np.flatnonzero(digits.labels == c)[:12]):
            big = np.kron(digits.images[j, :, :, 0], np.ones((5, 5))).astype(np.float64)
            rgb = big[..., None] * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 10, (40, 40, 3))
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(root / str(c) / f"{i}.png")
    return root


def test_cli_train_freeze_export_equals_encode(folder, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18-0000.pth"
    torch.save(build_backbone("resnet18").state_dict(), weights)
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--run", str(run_dir), "--backbone", "resnet18",
                 "--backbone-weights", str(weights), "--freeze-backbone", "--input-size", "32", "--resize", "40",
                 "--bits", "16", "--epochs", "1", "--batch-size", "40", "--protocol", "paper",
                 "--queries-per-class", "2", "--train-per-class", "10", "--threads", "1", "--workers", "0",
                 "--feature-cache", str(tmp_path / "features"), "--quiet"]) == 0  # the head trains on cached features
    run = Run.open(run_dir)
    state = torch.load(weights)
    assert all(torch.equal(v, state[k]) for k, v in run.load_model().net.backbone.state_dict().items())
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["config"]["backbone_weights"]["name"] == weights.name
    assert recorded["preprocessing"]["resize"] == 40 and recorded["preprocessing"]["input_size"] == 32
    assert recorded["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])

    out = tmp_path / "codes"
    assert main(["encode", "--run", str(run_dir), "--out", str(out), "--engine", "torch"]) == 0
    assert main(["export", "--run", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [40, 40, 3]  # raw images at the resize side; the crop is inside
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["input_size"] == "40" and meta["crop"] == "32"
    dataset = run.load_dataset()
    written = CodeSet.load(out / CODES["database"])
    images = np.stack([read_image(dataset.paths[i], channels=3) for i in written.ids])  # raw uint8 files
    _, codes = session.run(None, {"images": images})
    assert np.array_equal(codes, written.codes)
