"""Progress where stderr is not a terminal (issue 36.15): a plain line every half minute, never silence.

Before, the commands passed ``progress=sys.stderr.isatty()``: redirected to a log, an epoch or the
encoding of 70,000 images printed nothing for up to 25 minutes.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import torch

from dnnh.cli.common import show_bars
from dnnh.data import progress as progress_module
from dnnh.data.pipeline import Preprocessing
from dnnh.data.progress import Progress
from dnnh.encoder import Encoder
from dnnh.nn import DNNH


def test_commands_show_progress_when_stderr_is_a_log(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert show_bars()


def test_encoding_writes_a_line_with_images_done_and_rate_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
    torch.manual_seed(0)
    encoder = Encoder(DNNH(8, backbone="nin-small", in_channels=1), Preprocessing.fixed(8, 1, [0.5], [0.25]),
                      batch_size=16)
    encoder.encode_images(np.zeros((40, 8, 8, 1), dtype=np.uint8), progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("encoding database: 16/40 images, ") and lines[-1].startswith("encoding database: 40/40")
    assert all(line.endswith("img/s") for line in lines) and "\r" not in "".join(lines)


def test_lines_come_at_most_every_interval_and_read_the_note_only_when_written(monkeypatch):
    said, notes = [], []
    clock = iter([0.0, 1.0, 31.0, 32.0, 62.5, 63.0, 64.0])
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    shown = Progress(400, "epoch 1/3", shown=True, log=said.append, bar=False)
    for _ in range(5):
        shown.update(80, note=lambda: notes.append(1) or "loss 0.5000")
    assert said == ["epoch 1/3: 160/400 images, 5 img/s, loss 0.5000", "epoch 1/3: 320/400 images, 5 img/s, loss 0.5000"]
    assert len(notes) == 2  # a loss on a GPU is read (the host waits) only for the lines written
    quiet = Progress(400, "x", shown=False, log=said.append)
    quiet.update(400, note=lambda: notes.append(1) or "")
    assert len(said) == 2 and len(notes) == 2
