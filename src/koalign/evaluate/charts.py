"""PNG charts for the evaluation report (matplotlib, Agg backend, no display needed).

Chart labels use category ids and English words so they render with matplotlib's bundled fonts;
Korean names appear in the report's tables.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from koalign.errors import require

_COLORS = ("#7f8c8d", "#2e86de", "#e67e22", "#27ae60", "#8e44ad", "#c0392b")


def _plt():
    matplotlib = require("matplotlib", "eval", feature="report charts")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    intervals: Mapping[str, Sequence[Sequence[float] | None]] | None = None,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = (0.0, 1.0),
    reference: dict[str, float] | None = None,
) -> bytes:
    """A grouped bar chart (one bar per series in each group) with optional interval whiskers
    and horizontal reference lines; returns PNG bytes."""
    plt = _plt()
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(groups) * n + 2), 3.8), dpi=110)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        ys = [v if v is not None else 0.0 for v in values]
        yerr = None
        if intervals and name in intervals:
            lo, hi = [], []
            for v, ci in zip(ys, intervals[name], strict=True):
                lo.append(max(0.0, v - ci[0]) if ci else 0.0)
                hi.append(max(0.0, ci[1] - v) if ci else 0.0)
            yerr = [lo, hi]
        ax.bar(
            xs, ys, width=width, label=name, color=_COLORS[k % len(_COLORS)], yerr=yerr, capsize=3
        )
    for label, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="#555555")
        ax.text(len(groups) - 0.5, value, f" {label}", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=0 if len(groups) <= 14 else 45, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
