"""The report's charts, as PNG bytes.

Drawn on matplotlib's Agg canvas directly, not through pyplot: no display, no
global backend switch, nothing left open between calls. Only finite points are
drawn (rows hold None where a value is missing), and callers pass only rows
with at least one non-diverged seed: a diverged trial is never plotted.
Colours come from `colours`, so a variant has the same colour on every chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Literal, cast

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from optbench.components.results.row import display_name, fmt_time

FIGSIZE = (7, 4.5)
WIDE = (11, 4.8)
DPI = 110
MIB = 1024 * 1024
SHARE_FLOOR = 1e-3  # the lightest colour of the confusion heatmap: one digit in a thousand


def colours(names: list[str]) -> dict[str, str]:
    """One colour per variant, assigned by sorted name so every chart (and a rerun) agrees."""
    # tab10 and tab20 are ListedColormaps of RGB tuples; matplotlib types the registry and `colors` more loosely
    cmap = cast(ListedColormap, matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"])
    palette = cast(Sequence[tuple[float, float, float]], cmap.colors)
    return {n: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, n in enumerate(sorted(names))}


def _figure(
    figsize: tuple[float, float] = FIGSIZE, layout: Literal["constrained", "compressed", "tight"] | None = None
) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    buf = BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _legend(ax, count: int) -> None:
    ax.legend(fontsize="small", ncols=1 if count <= 8 else 2)


def _points(xs: list, ys: list) -> tuple[list, list]:
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def line_chart(
    rows: list[dict], key: str, title: str, ylabel: str, colour_of: dict[str, str], log: bool = False
) -> bytes:
    """Mean of `row[key]` (a per-epoch list) against epoch 1..N, one line per row; shaded +/- one standard
    deviation across seeds where the row has `<key>_std`."""
    fig = _figure()
    ax = fig.add_subplot()
    for row in rows:
        epochs, values = _points(list(range(1, len(row[key]) + 1)), row[key])
        colour = colour_of[row["optimizer"]]
        ax.plot(epochs, values, marker="o", markersize=3, linewidth=1.6, color=colour, label=display_name(row))
        band = [
            (e, row[key][e - 1], s)
            for e, s in zip(range(1, len(row[key]) + 1), row.get(f"{key}_std") or [])
            if s is not None and row[key][e - 1] is not None
        ]
        if band:
            e, m, s = (np.array(v, dtype=float) for v in zip(*band))
            ax.fill_between(e, m - s, m + s, color=colour, alpha=0.18, linewidth=0)
    if log:
        ax.set_yscale("log", nonpositive="clip")  # a slow optimizer's loss would flatten everyone else's curve
    ax.set(title=title, xlabel="Epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    _legend(ax, len(rows))
    return _png(fig)


def _time_axis(axis) -> None:
    """Ticks at whole seconds, labelled m:ss: finer ticks would print the same label twice on short runs."""
    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt_time(v) if v >= 0 else ""))


def time_chart(rows: list[dict], colour_of: dict[str, str]) -> bytes:
    """Validation accuracy against cumulative training cost (steps x per-step cost, mean over seeds): who gets
    there first."""
    fig = _figure()
    ax = fig.add_subplot()
    for row in rows:
        xs, ys = _points(row["elapsed_cost_seconds"], row["val_accuracy"])
        ax.plot(
            xs, ys, marker="o", markersize=3, linewidth=1.6, color=colour_of[row["optimizer"]], label=display_name(row)
        )
    ax.set(
        title="Validation accuracy against training cost", xlabel="Training cost (m:ss)", ylabel="Validation accuracy"
    )
    _time_axis(ax.xaxis)
    ax.grid(True, alpha=0.3)
    _legend(ax, len(rows))
    return _png(fig)


def cost_chart(rows: list[dict], colour_of: dict[str, str]) -> bytes:
    """Two bar charts side by side: mean training cost (error bar: sd over seeds) and optimizer state memory."""
    fig = _figure((WIDE[0], max(3.0, 1.2 + 0.35 * len(rows))))
    names = [display_name(r) for r in rows]
    y = np.arange(len(rows))
    colours_ = [colour_of[r["optimizer"]] for r in rows]
    time_ax, memory_ax = fig.subplots(1, 2, sharey=True)
    time_ax.barh(
        y,
        [r["cost_seconds"] or 0.0 for r in rows],
        color=colours_,
        xerr=[r["cost_seconds_std"] or 0.0 for r in rows],
        capsize=3,
    )
    time_ax.set(title="Training cost", xlabel="m:ss", yticks=y, yticklabels=names)
    _time_axis(time_ax.xaxis)
    time_ax.invert_yaxis()  # the ranking order, best at the top
    memory_ax.barh(y, [(r["optimizer_state_bytes"] or 0.0) / MIB for r in rows], color=colours_)
    memory_ax.set(title="Optimizer state", xlabel="MiB")
    for ax in (time_ax, memory_ax):
        ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def sensitivity_chart(grid: dict[str, list[dict]], colour_of: dict[str, str]) -> bytes:
    """Tune-confirm: final validation accuracy against learning rate (log scale), one line per optimizer."""
    fig = _figure()
    ax = fig.add_subplot()
    for family, points in grid.items():
        colour = colour_of.get(family, "black")
        xs, ys = _points([p["learning_rate"] for p in points], [p["val_accuracy"] for p in points])
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6, color=colour, label=family)
        for p in points:
            if p["val_accuracy"] is None:
                continue
            if p["chosen"]:
                ax.plot(p["learning_rate"], p["val_accuracy"], "o", markersize=10, fillstyle="none", color=colour)
            if p["default"]:
                ax.plot(p["learning_rate"], p["val_accuracy"], "s", markersize=6, color=colour)
    ax.set(
        title="Learning-rate sensitivity",
        xlabel="Learning rate (log scale)",
        ylabel="Validation accuracy",
        xscale="log",
    )
    ax.grid(True, alpha=0.3)
    _legend(ax, len(grid))
    return _png(fig)


def confusion_chart(panels: list[tuple[str, list[list[int]]]], class_names: list[str]) -> bytes:
    """One heatmap per (title, matrix[true][predicted]): colour is the share of the true class, text the count.

    Shares rather than counts, so that a class with fewer test digits is not paler for that reason alone; on a
    log scale, because the errors worth seeing are a fraction of a percent next to a diagonal near 1.
    """
    fig = _figure(WIDE, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    norm = LogNorm(vmin=SHARE_FLOOR, vmax=1)
    for ax, (title, matrix) in zip(axes, panels):
        counts = np.array(matrix, dtype=float)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(
            np.ma.masked_equal(np.maximum(shares, SHARE_FLOOR * (counts > 0)), 0), cmap="Blues", norm=norm
        )
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(
                    j,
                    i,
                    f"{int(n)}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="white" if shares[i, j] > 0.3 else "#1f2328",
                )
        ax.set(title=title, xlabel="Predicted", ylabel="True")
        _class_ticks(ax.xaxis, class_names)
        ax.set_yticks(range(len(class_names)), class_names)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of the true class (log scale)")
    return _png(fig)


def _class_ticks(axis, class_names: list[str]) -> None:
    """Class names as an axis's tick labels; names longer than a digit or two slant so that they do not overlap."""
    slant = max(map(len, class_names)) > 2
    axis.set_ticks(range(len(class_names)), class_names, rotation=45 if slant else 0, ha="right" if slant else "center")


def per_class_chart(rows: list[dict], colour_of: dict[str, str], class_names: list[str]) -> bytes:
    """Test accuracy per true class, one line per variant (mean over seeds)."""
    fig = _figure()
    ax = fig.add_subplot()
    for row in rows:
        labels = sorted(row["per_label_accuracy"], key=int)
        xs, ys = _points([int(d) for d in labels], [row["per_label_accuracy"][d] for d in labels])
        ax.plot(
            xs, ys, marker="o", markersize=4, linewidth=1.0, color=colour_of[row["optimizer"]], label=display_name(row)
        )
    ax.set(title="Test accuracy per class", xlabel="True class", ylabel="Test accuracy")
    _class_ticks(ax.xaxis, class_names)
    ax.grid(True, alpha=0.3)
    _legend(ax, len(rows))
    return _png(fig)


def calibration_chart(rows: list[dict], colour_of: dict[str, str]) -> bytes:
    """Reliability diagram of the top-1 prediction: accuracy against confidence per bin; the diagonal is perfect."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="perfectly calibrated")
    for row in rows:
        bins = row["calibration"]["bins"]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            markersize=3,
            linewidth=1.4,
            color=colour_of[row["optimizer"]],
            label=display_name(row),
        )
    ax.set(
        title="Calibration (top-1 confidence)", xlabel="Mean confidence", ylabel="Accuracy", xlim=(0, 1), ylim=(0, 1)
    )
    ax.grid(True, alpha=0.3)
    _legend(ax, len(rows) + 1)
    return _png(fig)


def trend_chart(
    run_labels: list[str],
    series: dict[str, list[dict | None]],
    colour_of: dict[str, str],
    time_key: str = "train_seconds",
    time_title: str = "Training time per run",
) -> bytes:
    """Test accuracy (with its 95% interval) and time (`time_key` of the rows: wall time, or cost) per run, one
    line per variant.

    `series[variant][i]` is that variant's row in run i, or None when the run did not have it.
    """
    fig = _figure((WIDE[0], 7.5))
    accuracy_ax, time_ax = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(run_labels))
    for name, cells in series.items():
        colour = colour_of[name]
        pts = [(i, c) for i, c in zip(x, cells) if c and c.get("test_accuracy") is not None]
        if pts:
            ys = np.array([c["test_accuracy"] for _, c in pts])
            low = np.array(
                [
                    c["test_accuracy_ci_low"] if c.get("test_accuracy_ci_low") is not None else c["test_accuracy"]
                    for _, c in pts
                ]
            )
            high = np.array(
                [
                    c["test_accuracy_ci_high"] if c.get("test_accuracy_ci_high") is not None else c["test_accuracy"]
                    for _, c in pts
                ]
            )
            accuracy_ax.errorbar(
                [i for i, _ in pts],
                ys,
                yerr=[ys - low, high - ys],
                marker="o",
                markersize=4,
                capsize=3,
                linewidth=1.4,
                color=colour,
                label=name,
            )
        times = [(i, c[time_key]) for i, c in zip(x, cells) if c and c.get(time_key) is not None]
        if times:
            time_ax.plot(*zip(*times), marker="o", markersize=4, linewidth=1.4, color=colour, label=name)
    accuracy_ax.set(title="Test accuracy per run (bars: 95% CI over seeds)", ylabel="Test accuracy")
    time_ax.set(title=time_title, ylabel="m:ss", xticks=x)
    time_ax.set_xticklabels(run_labels, rotation=20, ha="right", fontsize="small")
    _time_axis(time_ax.yaxis)
    for ax in (accuracy_ax, time_ax):
        ax.grid(True, alpha=0.3)
    _legend(accuracy_ax, len(series))
    return _png(fig)
