"""Issue 25.19: the figures' legends say each thing once and explain the circled point."""

from __future__ import annotations

import numpy as np

from dnnh.metrics import retrieval_report
from dnnh.metrics.plots import precision_at_k_figure, pr_curves_figure


def _report(nbits=12, radius=2):
    rng = np.random.default_rng(0)
    db, dl = rng.integers(0, 2, (200, nbits)), rng.integers(0, 4, 200)
    qb, ql = rng.integers(0, 2, (10, nbits)), rng.integers(0, 4, 10)
    return retrieval_report(qb, db, ql, dl, radius=radius)


def legend_labels(fig) -> list[str]:
    return [text.get_text() for text in fig.axes[0].get_legend().get_texts()]


def test_a_name_that_says_its_bits_is_not_told_them_twice():
    """Before: "DNNH 12 bits (12 bits, MAP ...)" (the run's name already carries its length)."""
    rep = _report()
    pr = legend_labels(pr_curves_figure({"DNNH 12 bits": rep, "lsh": rep}, title="t"))
    assert pr[0] == f"DNNH 12 bits (MAP {rep.map:.3f})" and pr[1] == f"lsh (12 bits, MAP {rep.map:.3f})"
    assert legend_labels(precision_at_k_figure({"DNNH 12 bits": rep, "lsh": rep})) == ["DNNH 12 bits", "lsh (12 bits)"]


def test_the_circled_point_is_explained_in_the_legend_whatever_the_title():
    """Before: the circle was explained only in the default title, which the run's figure replaces."""
    fig = pr_curves_figure({"DNNH 12 bits": _report(radius=2)}, title="digits: precision-recall")
    circled = [label for label in legend_labels(fig) if label.startswith("circled")]
    assert circled == ["circled: radius 2 (precision within the radius, a hash-table lookup)"]
    handle = fig.axes[0].get_legend().legend_handles[-1]
    assert handle.get_marker() == "o" and handle.get_markerfacecolor() == "none"
    mixed = legend_labels(pr_curves_figure({"a": _report(radius=1), "b": _report(radius=3)}))
    assert mixed[-1].startswith("circled: each method's report radius")
