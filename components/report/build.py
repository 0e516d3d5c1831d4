"""The report step: comparison.json/.csv, two charts, report.md and a self-contained report.html.

Everything is rendered in memory first, so a bad input or a template error
writes nothing. Files are then written one by one, atomically, with
report.html last: its presence means the report is complete.
"""
from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from components.common.files import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from components.report import charts
from components.report.comparison import (
    SCALAR_COLUMNS, article_table, comparison_rows, dataset_table, format_table, metrics_table,
    settings_table, verdict,
)

__all__ = ["build_report", "format_table", "load_inputs"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
COMPARISON_JSON = "comparison.json"
COMPARISON_CSV = "comparison.csv"
# file name, alt text / chart title, row key, y label, log scale
CHARTS = (
    ("accuracy.png", "Validation accuracy", "val_accuracy", "Validation accuracy", False),
    ("loss.png", "Validation loss", "val_loss", "Validation loss (log scale)", True),
)

_ENV = Environment(
    loader=PackageLoader("components.report", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)
_MD_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\r": " ", "\n": " "})
# Markdown has no autoescape: free text must not become raw HTML or break a table row.
_ENV.filters["md"] = lambda s: str(s).translate(_MD_ESCAPES)


def load_inputs(history_paths: list[str], summary_path: str, stats_path: str) -> tuple[list[dict], dict, dict]:
    """Read every optimizer's history.json, the evaluation summary.json and the dataset stats.json."""
    return [read_json(p) for p in history_paths], read_json(summary_path), read_json(stats_path)


def build_report(histories: list[dict], evaluation: dict, stats: dict, settings: dict,
                 output_dir: str) -> list[dict]:
    """Write the report folder (see docs/artifacts.md) and return the ranked comparison rows."""
    rows = comparison_rows(histories, evaluation)
    colour_of = charts.colours([r["optimizer"] for r in rows])
    images = {name: charts.line_chart(rows, key, f"{title} per epoch", ylabel, colour_of, log=log)
              for name, title, key, ylabel, log in CHARTS}
    models = sorted({h["model"] for h in histories if h.get("model")})
    evaluation = evaluation or {}
    context = {
        "title": f"Optimizer comparison: {', '.join(models)} on MNIST" if models else "Optimizer comparison on MNIST",
        "verdict": verdict(rows),
        "article": article_table(rows),
        "metrics": metrics_table(rows, evaluation),
        "evaluation": {"baseline": evaluation.get("baseline"), "test_examples": evaluation.get("test_examples"),
                       "validation_ok": evaluation.get("validation_ok")},
        "dataset": dataset_table(stats),
        "source": ((stats or {}).get("source") or {}).get("note"),
        "settings": settings_table(settings),
    }
    markdown = _ENV.get_template("report.md.j2").render(
        **context, images=[(title, name) for name, title, *_ in CHARTS])
    html = _ENV.get_template("report.html.j2").render(
        **context, images=[(title, "data:image/png;base64," + base64.b64encode(images[name]).decode("ascii"))
                           for name, title, *_ in CHARTS])

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_HTML).unlink(missing_ok=True)  # a previous run's page must not pass for this one's
    for name, png in images.items():
        write_bytes_atomic(out / name, png)
    write_json_atomic(out / COMPARISON_JSON, rows)
    write_text_atomic(out / COMPARISON_CSV, _csv(rows))
    write_text_atomic(out / REPORT_MD, markdown)
    write_text_atomic(out / REPORT_HTML, html)
    return rows


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=SCALAR_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)  # None -> empty cell
    return buf.getvalue()
