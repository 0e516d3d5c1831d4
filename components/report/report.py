"""The report step: comparison.json/.csv, significance.json, the charts, record.json and changes.json, report.md
and a self-contained report.html.

Everything is rendered in memory first, so a bad input or a template error
writes nothing. Files are then written one by one, atomically, with
report.html last: its presence means the report is complete.

With a history root, the report also reads the suite's earlier runs there, says
what changed since the previous one and shows the trend; on a remote root the
run then records itself there, for the runs after it.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path

from optbench.components.history.changes import history_section, notify_summary, what_changed
from optbench.components.history.records import History, earlier_runs, make_record, publish_record
from optbench.components.report import tracking
from optbench.components.report.comparison import comparison_rows
from optbench.components.report.verdict import candidate, mark_decisions, sequential_sentence, significance, verdict
from optbench.components.results import charts
from optbench.components.results.render import figure, render
from optbench.components.results.row import NON_FINITE, SCALAR_COLUMNS, contenders, format_table
from optbench.components.results.tables import (
    article_table,
    dataset_table,
    efficiency_table,
    metrics_table,
    protocol_table,
    rounds_table,
    settings_table,
    significance_table,
    sweep_table,
)
from optbench.components.shared import predictions as preds
from optbench.components.shared import uris
from optbench.components.shared.artifacts import history_paths, stats_path, summary_path
from optbench.components.shared.datasets import class_names
from optbench.components.shared.files import read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from optbench.components.shared.schema import (
    CHANGES_JSON,
    COMPARISON_CSV,
    COMPARISON_JSON,
    NUM_CLASSES,
    RECORD_JSON,
    REPORT_HTML,
    REPORT_MD,
    SEQUENTIAL_JSON,
    SIGNIFICANCE_JSON,
    STEP_COST_FILE,
    TENSORBOARD_DIR,
)
from optbench.components.shared.timing import timed
from optbench.components.shared.untrusted import plain_name

__all__ = ["build_report", "run_report", "format_table"]


@timed("report")
def run_report(
    dataset_dir: str,
    model_dirs: list[str],
    evaluation_dir: str,
    step_cost_dir: str,
    settings: dict,
    output_dir: str,
    markdown: str | None = None,
    html: str | None = None,
    tuning: dict | None = None,
    mlflow_uri: str = "",
    history_root: str = "",
    sequential: dict | None = None,
    notify: Callable[[dict], str] | None = None,
) -> list[dict]:
    """The report step: read the dataset's stats, every trial's history, the step costs, the evaluation summary
    and the predictions it names, then `build_report`; copy report.md and report.html to `markdown` and `html`
    (the KFP UI's Markdown and HTML artifacts) when given. With `mlflow_uri`, the trials are exported to MLflow
    first, the report states how that went and is attached to MLflow's run.

    With `history_root` (a folder of runs or a gs:// prefix), the suite's earlier runs are read there and the
    report says what changed; a root that cannot be listed is a note in the report, not a failed run. On a
    remote root the run's record is then written to `<history_root>/<run_id>/report/record.json`, once the
    report is complete (locally the runner publishes the whole report folder there). `notify` is called once
    with the run's summary (changes.summary); the status it returns is shown in the settings. `sequential` is
    the seeds-until-decided test's record (the decide step's last look), when the run added seeds by it.
    Returns the ranked comparison rows."""
    history = None
    if history_root:
        suite, run_id = settings.get("suite"), settings.get("run_id")
        if not isinstance(suite, str) or not isinstance(run_id, str):
            raise ValueError("a history needs the run's suite and run_id in its settings")
        try:
            history = History(history_root, *earlier_runs(history_root, suite, run_id))
        except ValueError as e:
            history = History(history_root, [], [str(e)])
    summary = read_json(summary_path(evaluation_dir))
    histories = [read_json(p) for p in history_paths(model_dirs)]
    step_cost = read_json(Path(step_cost_dir) / STEP_COST_FILE)
    exported = None
    if mlflow_uri:
        rows = comparison_rows(histories, summary, step_cost, tuned=tuning["chosen"] if tuning else None)
        exported, status = tracking.export_comparison(mlflow_uri, settings, histories, rows)
        settings = {**settings, "mlflow": status}
    rows = build_report(
        histories,
        summary,
        read_json(stats_path(dataset_dir)),
        settings,
        output_dir,
        predictions=preds.load(Path(evaluation_dir) / summary["predictions"]),
        step_cost=step_cost,
        tuning=tuning,
        tensorboard={h["trial"]: Path(d) / TENSORBOARD_DIR for h, d in zip(histories, model_dirs, strict=True)},
        history=history,
        sequential=sequential,
        notify=notify,
    )
    for copy, name in ((markdown, REPORT_MD), (html, REPORT_HTML)):
        if copy:
            shutil.copyfile(Path(output_dir) / name, copy)
    if exported:
        tracking.attach_report(mlflow_uri, exported, output_dir)
    if history_root and uris.is_remote(history_root):
        publish_record(history_root, settings["run_id"], Path(output_dir) / RECORD_JSON)
    return rows


def build_report(
    histories: list[dict],
    evaluation: dict,
    stats: dict,
    settings: dict,
    output_dir: str,
    predictions: preds.Predictions | None = None,
    step_cost: dict | None = None,
    tuning: dict | None = None,
    tensorboard: dict[str, Path] | None = None,
    history: History | None = None,
    sequential: dict | None = None,
    notify: Callable[[dict], str] | None = None,
) -> list[dict]:
    """Write the report folder (see docs/artifacts.md) and return the ranked comparison rows, one per variant.

    `predictions` (the evaluation's predictions file) enable the significance tests; without them the
    verdict names no winner. `step_cost` (the step-cost step's step_cost.json) gives the costs; without it
    they are n/a. `tuning` (the tune step's result) makes it a tune-confirm report. `tensorboard` (trial ->
    its event files) are gathered under one folder, for one `tensorboard --logdir`. `history` (the suite's
    earlier runs, history.earlier_runs) adds the History section and changes.json's flags; without it
    changes.json is null. `sequential` (the seeds-until-decided record) gives the verdict's decisions, the rows'
    decision_vs_leader and its own section and file. `notify`, when given, is called once with the run's summary
    (verdict and changes) before anything is rendered; the status it returns is shown in the settings as notify.status.
    """
    settings = settings or {}
    evaluation = evaluation or {}
    rows = comparison_rows(histories, evaluation, step_cost, tuned=tuning["chosen"] if tuning else None)
    # test_limit (the plan's settings; 0 or absent: the whole test split) makes more test examples an answer too
    sig = significance(
        rows, predictions, settings.get("margin") or 0.0, bool(settings.get("test_limit")), step_cost=step_cost
    )
    if sequential:
        mark_decisions(rows, sequential)
    trial_variant = {s["trial"]: r["optimizer"] for r in rows for s in r["per_seed"]}
    baseline = trial_variant.get(evaluation.get("baseline"), evaluation.get("baseline"))
    names = class_names(stats) if stats else [str(c) for c in range(NUM_CLASSES)]
    data = stats["dataset"]["title"] if stats else "MNIST"
    figures = _figures(rows, names, tuning)
    models = {h["model"]: h.get("parameters") for h in histories if h.get("model")}
    named = ", ".join(f"{m} ({n:,} parameters)" if n else m for m, n in sorted(models.items()))
    suite = settings.get("suite")
    title = f"Optimizer comparison: {named} on {data}" if models else f"Optimizer comparison on {data}"
    shown = contenders(rows)
    said = f"On {data}: " + verdict(rows, sig, evaluation, baseline, tuning, sequential)
    record = make_record(settings, rows, said, histories, step_cost, predictions, stats)
    changes = what_changed(record, history.runs, history.root, history.notes) if history is not None else None
    record["changes"] = changes
    if notify is not None:
        settings = {**settings, "notify": {"status": notify(notify_summary(record, changes))}}
    past, figures["history"] = (
        history_section(record, history.root, history.runs, changes)
        if history is not None and changes is not None
        else (None, [])
    )
    context = {
        "title": title + (f" (suite {suite})" if isinstance(suite, str) else ""),
        "verdict": said,
        "seeds": max(r["seeds_total"] for r in rows),
        "article": article_table(shown),
        "metrics": metrics_table(shown, baseline),
        "efficiency": efficiency_table(shown),
        "sweep": sweep_table(rows) if any(r["lr_sweep"] for r in rows) and not tuning else None,
        "protocol": protocol_table(rows) if tuning else None,
        "significance": significance_table(sig) if sig else None,
        "replicates": sig["replicates"] if sig else None,
        "rounds": _rounds(sequential) if sequential else None,
        "evaluation": {
            "baseline": baseline,
            "test_examples": evaluation.get("test_examples"),
            "validation_ok": evaluation.get("validation_ok"),
            "thresholds": evaluation.get("thresholds") or {},
        },
        "dataset": dataset_table(stats),
        "source": ((stats or {}).get("source") or {}).get("description"),
        "devices": sorted({d for h in histories if (d := h.get("device_name") or h.get("device"))}),
        "backends": sorted({h.get("backend", "tensorflow") for h in histories}),
        "packed": max((h.get("packed_with", 0) for h in histories), default=0),
        "settings": settings_table(settings),
        "cost_method": (step_cost or {}).get("method"),
        "history": past,
    }
    markdown = render("report.md.j2", context, figures, inline=False)
    html = render("report.html.j2", context, figures, inline=True)
    # a convenience: a model folder without event files still gets its report
    event_files = {plain_name(t, "trial"): p for t, p in (tensorboard or {}).items() if p.is_dir()}

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_HTML).unlink(missing_ok=True)  # a previous run's page must not pass for this one's
    for section in figures.values():
        for chart in section:
            write_bytes_atomic(out / chart["file"], chart["png"])
    write_json_atomic(out / COMPARISON_JSON, rows)
    write_json_atomic(out / SIGNIFICANCE_JSON, sig)
    if sequential:
        write_json_atomic(out / SEQUENTIAL_JSON, sequential)
    write_text_atomic(out / COMPARISON_CSV, _csv(rows))
    write_json_atomic(out / RECORD_JSON, record)
    write_json_atomic(out / CHANGES_JSON, changes)
    for trial, logs in event_files.items():
        shutil.copytree(logs, out / TENSORBOARD_DIR / trial, dirs_exist_ok=True)
    write_text_atomic(out / REPORT_MD, markdown)
    write_text_atomic(out / REPORT_HTML, html)
    return rows


def _rounds(record: dict) -> dict:
    """The seeds-until-decided section: what it decided, every look, and how it decides."""
    pairs = round(record["alpha"] / record["alpha_per_pair"])
    return {
        "summary": sequential_sentence(record),
        "table": rounds_table(record),
        "method": (
            f"A look after the run's seeds (from 2) and after each added seed, up to {record['max_seeds']}. At each, "
            f"every pair not yet decided is tested at alpha {record['alpha']:g} / {pairs} "
            "(Bonferroni over every pair of the variants, the leader having been chosen from the data) with "
            f"{record['spending']}: a pair whose |t| reaches the look's boundary is decided better or worse; one "
            f"whose repeated interval (the difference plus or minus the boundary times its standard error) lies "
            f"within +-{record['margin']:g} is equivalent. The boundary is the t quantile at seeds - 1 degrees "
            "of freedom. A decided pair trains no more seeds; earlier rounds' trials are kept, never retrained."
        ),
    }


def _figures(rows: list[dict], class_names: list[str], tuning: dict | None = None) -> dict[str, list[dict]]:
    """The charts per report section; a diverged variant is never drawn, and a chart with nothing to show is left
    out."""
    plotted = [r for r in contenders(rows) if r["status"] not in NON_FINITE]
    if not plotted:
        return {"training": [], "cost": [], "errors": [], "tuning": []}
    colour_of = charts.colours([r["optimizer"] for r in rows])
    sensitivity = []
    if tuning:
        family_colour = {r["family"]: colour_of[r["optimizer"]] for r in rows if not r["lr_sweep"]}
        sensitivity.append(
            figure(
                "sensitivity.png",
                "Learning-rate sensitivity",
                f"Final validation accuracy against learning rate on the tuning seed "
                f"({', '.join(map(str, tuning['tuning_seeds']))}); the ring marks the rate chosen, the square the "
                "default. A flat line is an optimizer that forgives its learning rate.",
                charts.sensitivity_chart(tuning["grid"], family_colour),
            )
        )
    band = "; shaded: +/- one standard deviation across seeds" if any(r["seeds_ok"] > 1 for r in plotted) else ""
    training = [
        figure(
            "accuracy.png",
            "Validation accuracy",
            f"Validation accuracy per epoch, mean over seeds{band}.",
            charts.line_chart(
                plotted, "val_accuracy", "Validation accuracy per epoch", "Validation accuracy", colour_of
            ),
        ),
        figure(
            "loss.png",
            "Validation loss",
            f"Validation loss per epoch (log scale), mean over seeds{band}.",
            charts.line_chart(
                plotted, "val_loss", "Validation loss per epoch", "Validation loss (log scale)", colour_of, log=True
            ),
        ),
        figure(
            "accuracy_time.png",
            "Validation accuracy against training cost",
            "Validation accuracy against cumulative training cost (steps x per-step cost): the further left, "
            "the cheaper.",
            charts.time_chart(plotted, colour_of),
        ),
    ]
    cost = [
        figure(
            "cost.png",
            "Training cost and optimizer memory",
            "Mean training cost, steps x per-step cost (error bars: standard deviation across seeds), and the "
            "memory of the "
            "optimizer's per-parameter state (slots such as momenta).",
            charts.cost_chart(plotted, colour_of),
        )
    ]
    errors = []
    tested = [r for r in plotted if r["confusion_matrix"]]
    if tested:
        best = candidate(rows) or tested[0]
        worst = tested[-1]
        panels = [(f"best: {best['optimizer']}", best["confusion_matrix"])]
        if worst is not best:
            panels.append((f"worst: {worst['optimizer']}", worst["confusion_matrix"]))
        errors.append(
            figure(
                "confusion.png",
                "Confusion matrices of the best and the worst optimizer",
                "Test confusion matrices summed over seeds: counts, coloured by share of the true class.",
                charts.confusion_chart(panels, class_names),
            )
        )
    labelled = [r for r in plotted if r["per_label_accuracy"]]
    if labelled:
        errors.append(
            figure(
                "per_class.png",
                "Test accuracy per class",
                "Test accuracy per true class, mean over seeds (TFMA's per-label slices).",
                charts.per_class_chart(labelled, colour_of, class_names),
            )
        )
    calibrated = [r for r in plotted if r["calibration"]]
    if calibrated:
        errors.append(
            figure(
                "calibration.png",
                "Calibration",
                "Reliability of the top-1 confidence on the test "
                "split (first seed); the dashed diagonal is perfect calibration.",
                charts.calibration_chart(calibrated, colour_of),
            )
        )
    return {"training": training, "cost": cost, "errors": errors, "tuning": sensitivity}


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=SCALAR_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)  # None -> empty cell
    return buf.getvalue()
