"""Trends across runs: how each variant's test accuracy and training time moved from run to run.

Works on what every run already wrote (its id, status, settings and
comparison rows, as the host's `read_run` reads them from a run
folder), so it needs no models, no TensorFlow and no re-evaluation. `optbench report --compare`
lines runs up in run-id order, which is chronological (local ids start with the UTC start time);
the report's history section lines up the records of a suite's
runs in the order they finished, and shows cost rather than wall time. A failed
run has no report: it stays in the table as a column of n/a, so a gap in a
scheduled series is visible rather than silently skipped. Settings that
differ between the runs (epochs, data size, ...) are listed, because they,
not the optimizer, may be what moved the numbers.
"""

from __future__ import annotations

from pathlib import Path

from optbench.components.results import charts
from optbench.components.results.render import figure, render
from optbench.components.results.row import NA, NON_FINITE, fmt, fmt_interval, fmt_time
from optbench.components.results.tables import Table
from optbench.components.shared.files import write_bytes_atomic, write_json_atomic, write_text_atomic

TREND_JSON = "trend.json"
TREND_MD = "trend.md"
TREND_HTML = "trend.html"
TREND_PNG = "trend.png"
# config keys whose differences between runs are worth a warning
COMPARED_SETTINGS = (
    "suite",
    "model_name",
    "epochs",
    "batch_size",
    "seed",
    "seeds",
    "data_source",
    "train_limit",
    "test_limit",
    "validation_fraction",
    "baseline",
)
CELL_KEYS = (
    "status",
    "seeds_ok",
    "test_accuracy",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_loss",
    "winner",
)
RUN_KEYS = ("run_id", "status", "seconds", "dir", "finished_at")  # those a run has are copied to the trend


def trend(runs: list[dict], time_key: str = "train_seconds") -> dict:
    """Line the runs up in the order given, oldest first: per variant, its cell in each run (None when absent) and
    its change first -> last, in test accuracy and in `time_key`: wall time, or "cost_seconds" (steps x per-step
    cost)."""
    order: list[str] = []
    for run in reversed(runs):  # the latest run's ranking first, then variants only older runs had
        for row in run["rows"] or []:
            if row["optimizer"] not in order:
                order.append(row["optimizer"])
    variants = {}
    for name in order:
        cells = []
        for run in runs:
            row = next((r for r in run["rows"] or [] if r["optimizer"] == name), None)
            cells.append(None if row is None else {key: row.get(key) for key in (*CELL_KEYS, time_key)})
        variants[name] = {"runs": cells, "change": _change(cells, time_key)}
    return {
        "runs": [
            {key: run[key] for key in RUN_KEYS if key in run}
            | {
                "settings": {k: run["config"].get(k) for k in COMPARED_SETTINGS if k in run["config"]},
                "winner": next((r["optimizer"] for r in run["rows"] or [] if r.get("winner")), None),
            }
            for run in runs
        ],
        "differences": _differences(runs),
        "variants": variants,
    }


def _change(cells: list[dict | None], time_key: str) -> dict:
    """Last minus first run that has the number, for test accuracy and time."""
    out = {}
    for key in ("test_accuracy", time_key):
        values = [c[key] for c in cells if c and c.get(key) is not None]
        out[key] = values[-1] - values[0] if len(values) > 1 else None
    return out


def _differences(runs: list[dict]) -> dict[str, list]:
    """Settings whose value is not the same in every run: setting -> the value per run."""
    out = {}
    for key in COMPARED_SETTINGS:
        values = [run["config"].get(key) for run in runs]
        if any(key in run["config"] for run in runs) and any(v != values[0] for v in values):
            out[key] = values
    return out


def runs_table(data: dict) -> Table:
    return {
        "header": ["Run", "Status", "Duration (m:ss)", "Winner"],
        "rows": [[r["run_id"], r["status"] or NA, fmt_time(r["seconds"]), r["winner"] or "none"] for r in data["runs"]],
        "numeric": False,
    }


def accuracy_table(data: dict) -> Table:
    """Test accuracy per variant and run, with its 95% interval over seeds, and the change first -> last."""

    def cell(c: dict | None) -> str:
        if c is None:
            return NA
        if c.get("status") in NON_FINITE:
            return c["status"]
        interval = fmt_interval(c.get("test_accuracy_ci_low"), c.get("test_accuracy_ci_high"))
        return fmt(c.get("test_accuracy")) + ("" if interval == NA else f" {interval}")

    return {
        "header": ["Optimizer", *(r["run_id"] for r in data["runs"]), "Change"],
        "rows": [
            [name, *(cell(c) for c in v["runs"]), fmt(v["change"]["test_accuracy"], signed=True)]
            for name, v in data["variants"].items()
        ],
        "numeric": True,
    }


def time_table(data: dict, time_key: str = "train_seconds") -> Table:
    """`time_key` (the trend's) per variant and run, m:ss, and the change first -> last."""

    def change(seconds: float | None) -> str:
        return NA if seconds is None else ("-" if seconds < 0 else "+") + fmt_time(abs(seconds))

    return {
        "header": ["Optimizer", *(r["run_id"] for r in data["runs"]), "Change"],
        "rows": [
            [
                name,
                *(fmt_time(c.get(time_key)) if c else NA for c in v["runs"]),
                change(v["change"][time_key]),
            ]
            for name, v in data["variants"].items()
        ],
        "numeric": True,
    }


def format_trend_table(data: dict) -> str:
    """Plain text for the terminal: test accuracy and training time per run, and the change."""
    header = ["Optimizer", *(r["run_id"] for r in data["runs"]), "Change"]
    body = [
        [
            name,
            *(
                NA if c is None else f"{fmt(c.get('test_accuracy'))} {fmt_time(c.get('train_seconds'))}"
                for c in v["runs"]
            ),
            fmt(v["change"]["test_accuracy"], signed=True),
        ]
        for name, v in data["variants"].items()
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in [header, ["-" * w for w in widths], *body]
    )


def build_trend_report(runs: list[dict], output_dir: str) -> dict:
    """Write trend.json, trend.md, trend.html (self-contained) and trend.png for `runs`; return the trend.

    A run is {run_id, status, seconds, config, dir, rows}: rows are its comparison.json, None when it wrote
    no report. Raises ValueError for no runs or a run given twice.
    """
    if not runs:
        raise ValueError("no runs to compare")
    ids = [r["run_id"] for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a run is given twice: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    data = trend(sorted(runs, key=lambda r: r["run_id"]))
    run_ids = [r["run_id"] for r in data["runs"]]
    labels = [r["run_id"] + ("" if r["status"] in (None, "succeeded") else f" ({r['status']})") for r in data["runs"]]
    png = charts.trend_chart(
        labels, {name: v["runs"] for name, v in data["variants"].items()}, charts.colours(list(data["variants"]))
    )
    figures = {
        "trend": [
            figure(
                TREND_PNG,
                "Test accuracy and training time per run",
                "Per optimizer, the test accuracy (bars: 95% CI over seeds) and the training time "
                "in each run, oldest first.",
                png,
            )
        ]
    }
    context = {
        "title": f"Optimizer trends over {len(run_ids)} runs",
        "runs": runs_table(data),
        "accuracy": accuracy_table(data),
        "time": time_table(data),
        "differences": data["differences"],
    }
    markdown = render("trend.md.j2", context, figures, inline=False)
    html = render("trend.html.j2", context, figures, inline=True)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / TREND_HTML).unlink(missing_ok=True)
    write_bytes_atomic(out / TREND_PNG, png)
    write_json_atomic(out / TREND_JSON, data)
    write_text_atomic(out / TREND_MD, markdown)
    write_text_atomic(out / TREND_HTML, html)
    return data
