"""Evaluate every trained model on the test split with TensorFlow Model Analysis.

Each model runs over the test examples once, here (predict.py); its
probabilities are stored beside the labels in `scored.tfrecord`, and all
models go through ONE TFMA run over that file: a single Beam pass (read,
parsed and sliced once) that loads no model, so a distributed runner needs
no model files, only the file's URI. TFMA, told which model is the baseline, computes every candidate's metric
differences against it on every slice and checks the thresholds in the same
pass. TFMA's raw output stays under `tfma/` for TFMA's own tools; the small
`summary.json` digest (docs/artifacts.md) is what the report step reads, and
`predictions.npz` holds each model's
predicted class per test example for the paired significance tests. Every
output goes to `output_dir`, a path or the artifact's gs:// URI
(`uris`).

Blessing: a model is blessed when TFMA's validation passes for it: overall
accuracy at least `min_accuracy` (a value threshold) and at most
`max_drop_vs_baseline` below the baseline's (a change threshold). TFMA never
checks thresholds on the baseline itself (it counts it as passing), so the
baseline's blessing applies the value bound here; its change against itself
is zero. A model whose outputs are not finite (it diverged) is never blessed:
TFMA would still give it an accuracy, the share of test digits that are 0,
because the argmax of NaN is the first class.

The default metric set is the cheap one. Macro-averaged AUC binarizes the
ten classes and multiplies TFMA's time about tenfold, and calibration adds a
histogram per model and slice, so both are opt-in.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time

from optbench.components.evaluate.predict import probabilities_feature, write_scored
from optbench.components.shared import uris
from optbench.components.shared.beam import pipeline_options
from optbench.components.shared.datasets import class_names
from optbench.components.shared.predictions import Predictions, example_batches, predicted_classes, probabilities
from optbench.components.shared.predictions import to_bytes as predictions_bytes
from optbench.components.shared.schema import (
    EVAL_SUMMARY_FILE,
    LABEL_KEY,
    NUM_CLASSES,
    PREDICTIONS_FILE,
    SCORED_FILE,
    STATS_FILE,
    TEST_SPLIT,
    TFMA_DIR,
    split_pattern,
)
from optbench.components.shared.timing import timed

log = logging.getLogger(__name__)

MATERIALIZED_PREDICTION = "materialized_prediction"  # TFMA's model type for predictions stored in the data
THRESHOLD_KEYS = ("min_accuracy", "max_drop_vs_baseline")

# summary.json key -> (TFMA metric class, its config); the key is also the metric's name in TFMA's output.
SCALAR_METRICS = {
    "example_count": ("ExampleCount", {}),
    "accuracy": ("SparseCategoricalAccuracy", {}),
    "loss": ("SparseCategoricalCrossentropy", {}),
    "top3_accuracy": ("SparseTopKCategoricalAccuracy", {"k": 3}),
}
CONFUSION_PLOT_CLASS = "MultiClassConfusionMatrixPlot"
AUC_NAME = "auc"
CALIBRATION_BINS = 10  # the usual reliability-diagram resolution; ECE is computed over these bins


@timed("evaluate")
def run_evaluate(
    models: dict[str, str],
    dataset_dir: str,
    output_dir: str,
    baseline: str | None = None,
    thresholds: dict | None = None,
    calibration: bool = False,
    auc: bool = False,
    beam_args: list[str] | None = None,
) -> dict:
    """Evaluate `models` (trial id -> SavedModel folder) on the test split of `dataset_dir` in one TFMA run.

    Writes TFMA's output to `output_dir/tfma/`, the digest to `output_dir/summary.json` and the
    per-example predicted classes to `output_dir/predictions.npz`; returns the digest.
    `baseline` is the trial the others are compared with; when it is None or not among `models`
    (a warning is logged: e.g. its training failed), there is no baseline, every
    `accuracy_diff_vs_baseline` is null and `max_drop_vs_baseline` is not checked.
    `thresholds` = {"min_accuracy": float, "max_drop_vs_baseline": float}, both optional.
    `calibration` adds a top-1 reliability histogram and its expected calibration error, `auc`
    the macro-averaged one-vs-rest AUC (slow). `beam_args` are Beam pipeline options (e.g. a
    Dataflow runner); without a `--runner` among them the in-process FnApiRunner is used.

    Raises ValueError for no models or an unknown threshold, FileNotFoundError when a SavedModel
    or the test TFRecords are missing, before any TFMA work starts.
    """
    thresholds = _check_thresholds(thresholds)
    test_files = check_inputs(models, dataset_dir)
    if baseline is not None and baseline not in models:
        log.warning(
            "evaluate: baseline %r is not among the models (%s); comparing without a baseline",
            baseline,
            ", ".join(models),
        )
        baseline = None
    # TFMA refuses a run whose only model is the baseline; alone, it has nothing to be compared with.
    baseline = baseline if len(models) > 1 else None

    with tempfile.TemporaryDirectory() as work:
        # One inference pass: TFMA evaluates the stored probabilities, and the predictions file is their argmax.
        batches, labels = example_batches([uris.fetch(f, work) for f in test_files])  # TF reads local copies
        probs = {name: probabilities(path, batches) for name, path in models.items()}
        scored = uris.put(write_scored(labels, probs, f"{work}/scored"), uris.join(output_dir, SCORED_FILE))
        config = eval_config(list(models), baseline, thresholds, calibration=calibration, auc=auc)
        tfma_dir = uris.join(output_dir, TFMA_DIR)
        tfma_seconds = run_tfma(list(models), config, scored, tfma_dir, beam_args)
        predicted = Predictions(labels, {name: predicted_classes(p) for name, p in probs.items()})
        summary = summarize(
            uris.fetch_tree(tfma_dir, f"{work}/{TFMA_DIR}"),
            list(models),
            baseline,
            thresholds,
            finite={name: predicted.finite(name) for name in models},
        )
    uris.write_bytes(uris.join(output_dir, PREDICTIONS_FILE), predictions_bytes(predicted))
    summary.update(
        {
            "tfma_seconds": round(tfma_seconds, 3),
            "calibration": calibration,
            "auc": auc,
            "predictions": PREDICTIONS_FILE,
            "class_names": class_names(json.loads(uris.read_bytes(uris.join(dataset_dir, STATS_FILE)))),
        }
    )
    uris.write_json(uris.join(output_dir, EVAL_SUMMARY_FILE), summary)
    return summary


def run_tfma(model_names: list[str], config, data_location: str, tfma_dir: str, beam_args: list[str] | None = None):
    """One TFMA analysis of every model's stored probabilities into `tfma_dir` (emptied first); its seconds.

    TFMA reads the predictions from the scored examples (model type "materialized_prediction"): it loads
    no model, so a distributed runner's workers need only the scored examples' URI. The pipeline is
    tfma.run_model_analysis's own, read, extract, evaluate, write, minus its driver-side TensorFlow file calls
    (the output folder's check, reading the result back), so every byte goes through Beam's file systems.
    """
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from tfx_bsl.public.tfxio import TFExampleRecord

    shared = [
        tfma.default_eval_shared_model(eval_saved_model_path="", model_name=name, eval_config=config)
        for name in model_names
    ]
    scored = TFExampleRecord(
        file_pattern=data_location, raw_record_column_name=tfma.ARROW_INPUT_COLUMN, telemetry_descriptors=["optbench"]
    )
    uris.remove_tree(tfma_dir)  # no stale shards from an earlier attempt
    started = time.perf_counter()
    with beam.Pipeline(options=pipeline_options(beam_args)) as p:
        _ = (
            p
            | "ReadScoredExamples" >> scored.BeamSource()
            | "ExtractEvaluateAndWriteResults"
            >> tfma.ExtractEvaluateAndWriteResults(
                eval_config=config,
                eval_shared_model=shared,
                output_path=tfma_dir,
                display_only_data_location=data_location,
                display_only_file_format="tfrecords",
            )
        )
    seconds = time.perf_counter() - started
    log.info("evaluate: TFMA over %d models took %.1fs", len(model_names), seconds)
    return seconds


def eval_config(
    model_names: list[str],
    baseline: str | None,
    thresholds: dict | None = None,
    calibration: bool = False,
    auc: bool = False,
):
    """The TFMA EvalConfig: the models, overall + per-label slices, the metrics and the thresholds."""
    from tensorflow_model_analysis.proto import config_pb2 as c  # tfma.EvalConfig is not exported in 0.52

    thresholds = thresholds or {}
    overall = c.SlicingSpec()
    metrics = {
        name: c.MetricConfig(class_name=cls, config=json.dumps({"name": name, **extra}))
        for name, (cls, extra) in SCALAR_METRICS.items()
    }
    # Thresholds are on the overall slice only: without a slice they would apply to every label too.
    # With a baseline TFMA computes diff metrics for every metric, thresholds or not.
    threshold = c.MetricThreshold()
    if "min_accuracy" in thresholds:
        threshold.value_threshold.lower_bound.value = thresholds["min_accuracy"]
    if "max_drop_vs_baseline" in thresholds and baseline is not None:
        threshold.change_threshold.direction = c.MetricDirection.HIGHER_IS_BETTER
        threshold.change_threshold.absolute.value = -thresholds["max_drop_vs_baseline"]
    if threshold.ListFields():
        metrics["accuracy"].per_slice_thresholds.add(slicing_specs=[overall], threshold=threshold)

    specs = [c.MetricsSpec(metrics=[*metrics.values(), c.MetricConfig(class_name=CONFUSION_PLOT_CLASS)])]
    if auc:  # one-vs-rest per class, then the mean over the classes (equal weights name the classes)
        specs.append(
            c.MetricsSpec(
                metrics=[c.MetricConfig(class_name="AUC", config=json.dumps({"name": AUC_NAME}))],
                aggregate=c.AggregationOptions(macro_average=True, class_weights={k: 1.0 for k in range(NUM_CLASSES)}),
            )
        )
    if calibration:  # k=1: label 1 when the top class is right, prediction its probability (the confidence)
        specs.append(
            c.MetricsSpec(
                metrics=[
                    c.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": CALIBRATION_BINS}))
                ],
                binarize=c.BinarizationOptions(k_list={"values": [1]}),
            )
        )
    return c.EvalConfig(
        model_specs=[
            c.ModelSpec(
                name=name,
                model_type=MATERIALIZED_PREDICTION,
                label_key=LABEL_KEY,
                prediction_key=probabilities_feature(name),
                is_baseline=name == baseline,
            )
            for name in model_names
        ],
        slicing_specs=[overall, c.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=specs,
    )


def summarize(
    tfma_dir: str,
    model_names: list[str],
    baseline: str | None,
    thresholds: dict | None = None,
    finite: dict[str, bool] | None = None,
) -> dict:
    """Read TFMA's metrics, plots and validation result back into the summary.json structure.

    `finite` (trial -> whether all its outputs were finite) withholds blessing from diverged models.
    """
    import tensorflow_model_analysis as tfma

    thresholds = thresholds or {}
    finite = finite or {}

    def owner(key_model_name: str) -> str:  # with a single model, TFMA leaves the model name out of its keys
        return key_model_name or model_names[0]

    values: dict[tuple, float | None] = {}  # (label or None for overall, model, metric, is_diff) -> value
    for record in tfma.load_metrics(tfma_dir):
        label = _slice_label(record.slice_key)
        for kv in record.metric_keys_and_values:
            values[label, owner(kv.key.model_name), kv.key.name, kv.key.is_diff] = _number(kv.value)

    matrices, calibrations = {}, {}
    for record in tfma.load_plots(tfma_dir):
        if _slice_label(record.slice_key) is None:
            for kv in record.plot_keys_and_values:  # told apart by content: TFMA leaves some plot names empty
                if kv.value.HasField("multi_class_confusion_matrix_at_thresholds"):
                    matrices[owner(kv.key.model_name)] = _confusion_matrix(kv.value)
                elif kv.value.HasField("calibration_histogram_buckets"):
                    calibrations[owner(kv.key.model_name)] = _calibration(kv.value)

    failures: dict[str, list[str]] = {name: [] for name in model_names}
    validation = tfma.load_validation_result(tfma_dir)
    for per_slice in validation.metric_validations_per_slice:
        for f in per_slice.failures:
            failures[owner(f.metric_key.model_name)].append(_failure_reason(f))
    for name in model_names:
        accuracy = values.get((None, name, "accuracy", False))
        if (
            name == baseline
            and "min_accuracy" in thresholds
            and not (accuracy is not None and accuracy >= thresholds["min_accuracy"])
        ):
            failures[name].append(f"accuracy {_show(accuracy)} is below the minimum {thresholds['min_accuracy']:g}")
        if not finite.get(name, True):
            failures[name].insert(0, "non-finite outputs (the model diverged)")

    models = {}
    for name in model_names:
        count = values.get((None, name, "example_count", False))
        models[name] = {
            "example_count": None if count is None else int(count),
            **{key: values.get((None, name, key, False)) for key in ("accuracy", "loss", "top3_accuracy")},
            "accuracy_diff_vs_baseline": (
                values.get((None, name, "accuracy", True)) if baseline not in (None, name) else None
            ),
            "blessed": not failures[name],
            "failed_thresholds": failures[name],
            "finite_predictions": finite.get(name, True),
            "macro_auc": values.get((None, name, AUC_NAME, False)),
            "calibration": calibrations.get(name),
            "per_label_accuracy": {str(d): values.get((str(d), name, "accuracy", False)) for d in range(NUM_CLASSES)},
            "confusion_matrix": matrices.get(name, [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]),
        }
    return {
        "baseline": baseline,
        "thresholds": thresholds,
        "test_examples": models[model_names[0]]["example_count"],
        "validation_ok": all(m["blessed"] for m in models.values()),
        "models": models,
    }


def _check_thresholds(thresholds: dict | None) -> dict:
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(THRESHOLD_KEYS))
    if unknown:
        raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; valid: {', '.join(THRESHOLD_KEYS)}")
    for key, value in thresholds.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
            raise ValueError(f"threshold {key} must be a number in [0, 1], got {value!r}")
    return {k: float(v) for k, v in thresholds.items()}


def check_inputs(models: dict[str, str], dataset_dir: str) -> list[str]:
    """The test split's shards; fails early, naming the path: TFMA's own errors come late and deep inside Beam."""
    if not models:
        raise ValueError(f"no models to evaluate on {dataset_dir}")
    for name, path in models.items():
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"model {name!r}: no SavedModel at {path}")
    pattern = split_pattern(dataset_dir, TEST_SPLIT)
    test_files = uris.match(pattern)
    if not test_files:
        raise FileNotFoundError(f"no TFRecords for split {TEST_SPLIT!r}: nothing matches {pattern}")
    return test_files


def _slice_label(slice_key) -> str | None:
    """None for the overall slice, the digit as a string for a per-label slice."""
    keys = slice_key.single_slice_keys
    return str(keys[0].int64_value) if keys else None


def _number(value) -> float | None:
    """A metric value as a plain float; missing or NaN/inf (a diverged model) as None."""
    if not value.HasField("double_value"):
        return None
    v = value.double_value.value
    return v if math.isfinite(v) else None


def _show(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _failure_reason(failure) -> str:
    """A TFMA validation failure in words, from the threshold it broke."""
    value = _show(_number(failure.metric_value))
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        return (
            f"{failure.metric_key.name} {value} against the baseline, beyond the allowed change "
            f"{threshold.change_threshold.absolute.value:+g}"
        )
    return f"{failure.metric_key.name} {value} is below the minimum {threshold.value_threshold.lower_bound.value:g}"


def _confusion_matrix(plot_value) -> list[list[int]]:
    """[true][predicted] counts from TFMA's matrix at its single threshold (0.0: always the argmax)."""
    matrix = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for entry in plot_value.multi_class_confusion_matrix_at_thresholds.matrices[0].entries:
        if 0 <= entry.actual_class_id < NUM_CLASSES and 0 <= entry.predicted_class_id < NUM_CLASSES:
            matrix[entry.actual_class_id][entry.predicted_class_id] += round(entry.num_weighted_examples)
    return matrix


def _calibration(plot_value) -> dict:
    """The top-1 reliability histogram: per confidence bin the count, accuracy and mean confidence; and the ECE.

    TFMA adds an underflow and an overflow bucket around [0, 1]; probabilities never fall there, and
    empty bins carry no information, so only non-empty bins are kept.
    """
    bins = []
    for b in plot_value.calibration_histogram_buckets.buckets:
        n = b.num_weighted_examples.value
        if n > 0 and math.isfinite(b.lower_threshold_inclusive) and math.isfinite(b.upper_threshold_exclusive):
            bins.append(
                {
                    "low": b.lower_threshold_inclusive,
                    "high": b.upper_threshold_exclusive,
                    "count": round(n),
                    "accuracy": b.total_weighted_label.value / n,
                    "confidence": b.total_weighted_refined_prediction.value / n,
                }
            )
    total = sum(b["count"] for b in bins)
    ece = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / total if total else None
    return {"ece": ece, "bins": bins}
