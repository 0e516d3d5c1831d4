"""The report step: comparison.json/.csv, significance.json, the charts, report.md and a self-contained report.html.

Everything is rendered in memory first, so a bad input or a template error
writes nothing. Files are then written one by one, atomically, with
report.html last: its presence means the report is complete.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from components.common.files import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from components.evaluate import predictions as preds
from components.report import charts
from components.report.comparison import SCALAR_COLUMNS, comparison_rows, contenders, format_table
from components.report.render import figure, render
from components.report.tables import (
    article_table, dataset_table, efficiency_table, metrics_table, settings_table, significance_table, sweep_table,
)
from components.report.verdict import candidate, significance, verdict

__all__ = ["build_report", "format_table", "load_inputs", "load_predictions"]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
COMPARISON_JSON = "comparison.json"
COMPARISON_CSV = "comparison.csv"
SIGNIFICANCE_JSON = "significance.json"


def load_inputs(history_paths: list[str], summary_path: str, stats_path: str) -> tuple[list[dict], dict, dict]:
    """Read every trial's history.json, the evaluation summary.json and the dataset stats.json."""
    return [read_json(p) for p in history_paths], read_json(summary_path), read_json(stats_path)


def load_predictions(summary_path: str) -> preds.Predictions | None:
    """The per-example predictions that summary.json names, from beside it; None when it names none (an
    evaluation from before they existed). A named file that is missing is an error, not a silent None."""
    name = read_json(summary_path).get("predictions")
    return preds.load(Path(summary_path).parent / name) if name else None


def build_report(histories: list[dict], evaluation: dict, stats: dict, settings: dict, output_dir: str,
                 predictions: preds.Predictions | None = None) -> list[dict]:
    """Write the report folder (see docs/artifacts.md) and return the ranked comparison rows, one per variant.

    `predictions` (from `load_predictions`) enable the significance tests; without them the verdict
    names no winner.
    """
    evaluation = evaluation or {}
    rows = comparison_rows(histories, evaluation)
    sig = significance(rows, predictions)
    trial_variant = {s["trial"]: r["optimizer"] for r in rows for s in r["per_seed"]}
    baseline = trial_variant.get(evaluation.get("baseline"), evaluation.get("baseline"))
    figures = _figures(rows)
    models = sorted({h["model"] for h in histories if h.get("model")})
    suite = (settings or {}).get("suite")
    title = f"Optimizer comparison: {', '.join(models)} on MNIST" if models else "Optimizer comparison on MNIST"
    shown = contenders(rows)
    context = {
        "title": title + (f" (suite {suite})" if isinstance(suite, str) else ""),
        "verdict": verdict(rows, sig, evaluation, baseline),
        "seeds": max(r["seeds_total"] for r in rows),
        "article": article_table(shown),
        "metrics": metrics_table(shown, baseline),
        "efficiency": efficiency_table(shown),
        "sweep": sweep_table(rows) if any(r["lr_sweep"] for r in rows) else None,
        "significance": significance_table(sig) if sig else None,
        "replicates": sig["replicates"] if sig else None,
        "evaluation": {"baseline": baseline, "test_examples": evaluation.get("test_examples"),
                       "validation_ok": evaluation.get("validation_ok"),
                       "thresholds": evaluation.get("thresholds") or {}},
        "dataset": dataset_table(stats),
        "source": ((stats or {}).get("source") or {}).get("note"),
        "devices": sorted({h.get("device_name") or h.get("device") for h in histories
                           if h.get("device_name") or h.get("device")}),
        "settings": settings_table(settings),
    }
    markdown = render("report.md.j2", context, figures, inline=False)
    html = render("report.html.j2", context, figures, inline=True)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_HTML).unlink(missing_ok=True)  # a previous run's page must not pass for this one's
    for section in figures.values():
        for chart in section:
            write_bytes_atomic(out / chart["file"], chart["png"])
    write_json_atomic(out / COMPARISON_JSON, rows)
    write_json_atomic(out / SIGNIFICANCE_JSON, sig)
    write_text_atomic(out / COMPARISON_CSV, _csv(rows))
    write_text_atomic(out / REPORT_MD, markdown)
    write_text_atomic(out / REPORT_HTML, html)
    return rows


def _figures(rows: list[dict]) -> dict[str, list[dict]]:
    """The charts per report section; a diverged variant is never drawn, and a chart with nothing to show is left
    out."""
    plotted = [r for r in contenders(rows) if r["status"] != "diverged"]
    if not plotted:
        return {"training": [], "cost": [], "errors": []}
    colour_of = charts.colours([r["optimizer"] for r in rows])
    band = "; shaded: +/- one standard deviation across seeds" if any(r["seeds_ok"] > 1 for r in plotted) else ""
    training = [
        figure("accuracy.png", "Validation accuracy", f"Validation accuracy per epoch, mean over seeds{band}.",
                charts.line_chart(plotted, "val_accuracy", "Validation accuracy per epoch", "Validation accuracy",
                                  colour_of)),
        figure("loss.png", "Validation loss", f"Validation loss per epoch (log scale), mean over seeds{band}.",
                charts.line_chart(plotted, "val_loss", "Validation loss per epoch", "Validation loss (log scale)",
                                  colour_of, log=True)),
        figure("accuracy_time.png", "Validation accuracy against training time",
                "Validation accuracy against cumulative training time: the further left, the cheaper.",
                charts.time_chart(plotted, colour_of)),
    ]
    cost = [figure("cost.png", "Training time and optimizer memory",
                    "Mean training time (error bars: standard deviation across seeds) and the memory of the "
                    "optimizer's per-parameter state (slots such as momenta).", charts.cost_chart(plotted, colour_of))]
    errors = []
    tested = [r for r in plotted if r["confusion_matrix"]]
    if tested:
        best = candidate(rows) or tested[0]
        worst = tested[-1]
        panels = [(f"best: {best['optimizer']}", best["confusion_matrix"])]
        if worst is not best:
            panels.append((f"worst: {worst['optimizer']}", worst["confusion_matrix"]))
        errors.append(figure("confusion.png", "Confusion matrices of the best and the worst optimizer",
                              "Test confusion matrices summed over seeds: counts, coloured by share of the true digit.",
                              charts.confusion_chart(panels)))
    labelled = [r for r in plotted if r["per_label_accuracy"]]
    if labelled:
        errors.append(figure("per_class.png", "Test accuracy per digit", "Test accuracy per true digit, mean over "
                              "seeds (TFMA's per-label slices).", charts.per_class_chart(labelled, colour_of)))
    calibrated = [r for r in plotted if r["calibration"]]
    if calibrated:
        errors.append(figure("calibration.png", "Calibration", "Reliability of the top-1 confidence on the test "
                              "split (first seed); the dashed diagonal is perfect calibration.",
                              charts.calibration_chart(calibrated, colour_of)))
    return {"training": training, "cost": cost, "errors": errors}


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=SCALAR_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)  # None -> empty cell
    return buf.getvalue()
