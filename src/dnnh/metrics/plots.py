"""PNG figures comparing methods, drawn on a bare ``Figure`` with the Agg canvas.

pyplot is never imported: its global figure registry leaks memory across calls in long runs and
fights whatever backend a notebook or server has chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dnnh.metrics.report import RetrievalReport


def _distinct_colors(ax, n: int) -> None:
    """More than ten methods would repeat matplotlib's default ten colours; tab20 keeps them apart."""
    if n > 10:
        from matplotlib import colormaps

        ax.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(n)])


def _check(reports: Mapping[str, RetrievalReport]) -> None:
    if not reports:
        raise ValueError("reports must map at least one method name to a RetrievalReport; got none")
    for name, report in reports.items():
        if not isinstance(report, RetrievalReport):
            raise TypeError(f"reports[{name!r}] must be a RetrievalReport; got {type(report).__name__}")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")
    return path


def _label(name: str, rep: RetrievalReport, *extra: str) -> str:
    """``name (48 bits, ...)``; the bits are left out where the name already says them ("DNNH 48 bits")."""
    parts = ([] if f"{rep.nbits} bits" in name else [f"{rep.nbits} bits"]) + list(extra)
    return f"{name} ({', '.join(parts)})" if parts else name


def pr_curves_figure(reports: Mapping[str, RetrievalReport], *, title: str | None = None) -> Figure:
    """Precision against recall of the Hamming ball, one curve a method, one point a radius 0..q.

    The point at the report's radius is circled, since that is the operating point of a hash-table
    lookup (the report's "precision within radius r"); a legend entry says so, whatever the title.
    The legend carries each method's MAP so the two views can be read together.
    """
    _check(reports)
    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.add_subplot()
    _distinct_colors(ax, len(reports))
    radii = set()
    for name, rep in reports.items():
        (line,) = ax.plot(rep.pr_recall, rep.pr_precision, marker=".", label=_label(name, rep, f"MAP {rep.map:.3f}"))
        r = min(rep.radius, rep.nbits)
        radii.add(r)
        ax.plot([rep.pr_recall[r]], [rep.pr_precision[r]], marker="o", mfc="none", ms=10, color=line.get_color())
    circled = (f"radius {radii.pop()}" if len(radii) == 1 else "each method's report radius")
    ax.plot([], [], ls="none", marker="o", mfc="none", ms=10, color="0.35",
            label=f"circled: {circled} (precision within the radius, a hash-table lookup)")
    ax.set_xlabel("recall (Hamming ball)")
    ax.set_ylabel("precision (Hamming ball)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "Precision-recall over Hamming radius")
    fig.tight_layout()
    return fig


def plot_pr_curves(reports: Mapping[str, RetrievalReport], path: str | Path, *, title: str | None = None) -> Path:
    """:func:`pr_curves_figure` saved as a PNG."""
    return _save(pr_curves_figure(reports, title=title), path)


def precision_at_k_figure(reports: Mapping[str, RetrievalReport], *, title: str | None = None) -> Figure:
    """Precision at the top k ranked items against k (log scale), one curve a method."""
    _check(reports)
    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.add_subplot()
    _distinct_colors(ax, len(reports))
    for name, rep in reports.items():
        ax.plot(rep.precision_at, rep.precision_at_k, marker="o", label=_label(name, rep))
    ax.set_xscale("log")
    ax.set_xlabel("k (top k by Hamming ranking)")
    ax.set_ylabel("precision@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    ax.set_title(title or "Precision at top k")
    fig.tight_layout()
    return fig


def plot_precision_at_k(reports: Mapping[str, RetrievalReport], path: str | Path, *, title: str | None = None) -> Path:
    """:func:`precision_at_k_figure` saved as a PNG."""
    return _save(precision_at_k_figure(reports, title=title), path)


def map_vs_bits_figure(series: Mapping[str, Mapping[int, float]], *, title: str | None = None,
                       errors: Mapping[str, Mapping[int, float]] | None = None) -> Figure:
    """MAP against code length, one line a method: the shape of a hashing paper's main figure.

    ``series`` maps a method name to {bits: MAP}; lengths a method lacks are simply not drawn.
    ``errors`` (same shape, optional) draws an error bar of that half-height at each point, e.g.
    the standard deviation over training seeds when ``series`` holds their means; a method or
    length it lacks gets none.
    """
    if not series:
        raise ValueError("series must map at least one method name to {bits: MAP}; got none")
    for name, points in series.items():
        if not points:
            raise ValueError(f"series[{name!r}] has no (bits, MAP) points")
    fig = Figure(figsize=(7.5, 4.5), dpi=120)
    ax = fig.add_subplot()
    _distinct_colors(ax, len(series))
    lengths = sorted({int(b) for points in series.values() for b in points})
    for name, points in series.items():
        bits = sorted(int(b) for b in points)
        values = [float(points[b]) for b in bits]
        spread = (errors or {}).get(name)
        if spread:
            ax.errorbar(bits, values, yerr=[float(spread.get(b, 0.0) or 0.0) for b in bits], marker="o", capsize=3,
                        label=name)
        else:
            ax.plot(bits, values, marker="o", label=name)
    ax.set_xticks(lengths)
    ax.set_xlabel("code length (bits)")
    ax.set_ylabel("MAP")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside: lines run across
    ax.set_title(title or "MAP against code length")
    fig.tight_layout()
    return fig


def plot_map_vs_bits(series: Mapping[str, Mapping[int, float]], path: str | Path, *, title: str | None = None,
                     errors: Mapping[str, Mapping[int, float]] | None = None) -> Path:
    """:func:`map_vs_bits_figure` saved as a PNG (``errors``: error bars, e.g. std over seeds)."""
    return _save(map_vs_bits_figure(series, title=title, errors=errors), path)
