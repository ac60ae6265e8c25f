"""The report survives JSON; the plots write PNGs without touching pyplot's global state."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dnnh.metrics
from dnnh.metrics import RetrievalReport, retrieval_report
from dnnh.metrics.plots import map_vs_bits_figure, plot_map_vs_bits, plot_pr_curves, plot_precision_at_k

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _reports():
    rng = np.random.default_rng(0)
    db, dl = rng.integers(0, 2, (300, 12)), rng.integers(0, 4, 300)
    qb, ql = rng.integers(0, 2, (20, 12)), rng.integers(0, 4, 20)
    good = db.copy()
    good[:, :4] = np.eye(4, dtype=int)[dl]  # codes that carry the class: a better method
    qgood = qb.copy()
    qgood[:, :4] = np.eye(4, dtype=int)[ql]
    return {
        "random": retrieval_report(qb, db, ql, dl, topk=50),
        "class bits": retrieval_report(qgood, good, ql, dl, topk=50),
    }


def test_report_round_trips_through_json():
    rep = _reports()["random"]
    text = json.dumps(rep.to_dict(), allow_nan=False)  # strict JSON: NaN would fail here
    assert RetrievalReport.from_dict(json.loads(text)) == rep


def test_nan_from_skip_becomes_null_and_back():
    # one query, class 5, absent from the database: nothing to average under "skip"
    qb, db = np.zeros((1, 4), int), np.eye(4, dtype=int)
    rep = retrieval_report(qb, db, np.array([5]), np.arange(4), topk=2, empty="skip")
    assert math.isnan(rep.map) and math.isnan(rep.map_at_k)
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["map"] is None and data["map_at_k"] is None and data["n_no_relevant"] == 1
    back = RetrievalReport.from_dict(data)
    assert math.isnan(back.map) and math.isnan(back.map_at_k) and back.topk == 2


def test_plots_write_png_files(tmp_path):
    reports = _reports()
    pr = plot_pr_curves(reports, tmp_path / "pr.png")
    pk = plot_precision_at_k(reports, tmp_path / "sub" / "p_at_k.png", title="P@k")
    for path in (pr, pk):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_map_vs_bits_draws_each_method_in_bit_order(tmp_path):
    series = {"dnnh": {48: 0.84, 12: 0.80, 24: 0.83}, "lsh": {12: 0.26, 48: 0.39}}
    ax = map_vs_bits_figure(series).axes[0]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"dnnh": ([12, 24, 48], [0.80, 0.83, 0.84]), "lsh": ([12, 48], [0.26, 0.39])}
    assert list(ax.get_xticks()) == [12, 24, 48]
    assert plot_map_vs_bits(series, tmp_path / "m.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match=r"series\['lsh'\] has no"):
        map_vs_bits_figure({"dnnh": {12: 0.8}, "lsh": {}})
    with pytest.raises(ValueError, match="at least one method"):
        map_vs_bits_figure({})


def test_plot_input_is_checked(tmp_path):
    with pytest.raises(ValueError, match="at least one method"):
        plot_pr_curves({}, tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"reports\['a'\] must be a RetrievalReport; got dict"):
        plot_precision_at_k({"a": {}}, tmp_path / "x.png")


def test_package_exports_and_plots_leave_pyplot_alone(tmp_path):
    assert dnnh.metrics.plot_pr_curves is plot_pr_curves  # re-exported, loaded on first use
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import dnnh.metrics as m
        assert "matplotlib" not in sys.modules, "importing the metrics must not import matplotlib"
        b = np.random.default_rng(0).integers(0, 2, (30, 8))
        rep = m.retrieval_report(b[:5], b, np.arange(5) % 2, np.arange(30) % 2)
        m.plot_pr_curves({{"x": rep}}, {str(tmp_path / "a.png")!r})
        m.plot_precision_at_k({{"x": rep}}, {str(tmp_path / "b.png")!r})
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
