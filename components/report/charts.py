"""Per-epoch line charts as PNG bytes.

Drawn on matplotlib's Agg canvas directly, not through pyplot: no display, no
global backend switch, nothing left open between calls. Only finite points are
drawn (rows hold None where a diverged run's loss was NaN), so a diverged line
simply stops where its loss stopped being a number.
"""
from __future__ import annotations

from io import BytesIO

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

FIGSIZE = (7, 4.5)
DPI = 110


def colours(names: list[str]) -> dict[str, str]:
    """One colour per optimizer, assigned by sorted name so every chart (and a rerun) agrees."""
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {n: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, n in enumerate(sorted(names))}


def line_chart(rows: list[dict], key: str, title: str, ylabel: str, colour_of: dict[str, str],
               log: bool = False) -> bytes:
    """One line per row of `row[key]` (a per-epoch list) against epoch 1..N."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row in rows:
        points = [(epoch, v) for epoch, v in enumerate(row[key], start=1) if v is not None]
        label = row["optimizer"] + (" (diverged)" if row["status"] == "diverged" else "")
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, linewidth=1.6,
                color=colour_of[row["optimizer"]], label=label)
    if log:
        ax.set_yscale("log")  # a diverging run's loss would otherwise flatten everyone else's curve
    ax.set(title=title, xlabel="Epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncols=1 if len(rows) <= 8 else 2)
    fig.tight_layout()
    buf = BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
