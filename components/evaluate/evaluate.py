"""Evaluate every trained model on the test split with TensorFlow Model Analysis.

All models go through ONE TFMA run rather than one run each: they share a
single Beam pass over the test records (read, parsed and sliced once), and
TFMA, told which model is the baseline, computes every candidate's metric
differences against it on every slice and checks the thresholds in the same
pass. TFMA's raw output stays under `tfma/` for TFMA's own tools; the small
`summary.json` digest (docs/artifacts.md) is what the report step reads.

A model is *blessed* when its overall test accuracy is at least
`min_accuracy`. TFMA never checks thresholds on the baseline model (it counts
it as passing), so the baseline's blessing applies the same bound here.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

from components.common.beam import pipeline_options
from components.common.files import read_json, write_json_atomic
from components.common.schema import (EVAL_SUMMARY_FILE, LABEL_KEY, NUM_CLASSES, SERVING_OUTPUT,
                                      SERVING_SIGNATURE, split_pattern)

log = logging.getLogger(__name__)

TEST_SPLIT = "test"
TFMA_DIR = "tfma"

# summary.json key -> (TFMA metric class, its config); the key is also the metric's name in TFMA's output.
SCALAR_METRICS = {
    "example_count": ("ExampleCount", {}),
    "accuracy": ("SparseCategoricalAccuracy", {}),
    "loss": ("SparseCategoricalCrossentropy", {}),
    "top3_accuracy": ("SparseTopKCategoricalAccuracy", {"k": 3}),
}
CONFUSION_PLOT_CLASS = "MultiClassConfusionMatrixPlot"
CONFUSION_PLOT_NAME = "multi_class_confusion_matrix_plot"  # its name in TFMA's output


def evaluate(models: dict[str, str], dataset_dir: str, output_dir: str, baseline: str | None = "sgd",
             min_accuracy: float = 0.0, beam_args: list[str] | None = None) -> dict:
    """Evaluate `models` (name -> SavedModel folder) on the test split of `dataset_dir` in one TFMA run.

    Writes TFMA's output to `output_dir/tfma/` and the digest to `output_dir/summary.json`, and
    returns the digest. `baseline` names the model the others are compared with; when it is None
    or not among `models` (a warning is logged: e.g. the baseline optimizer was left out of the
    run), there is no baseline and every `accuracy_diff_vs_baseline` is null. `beam_args` are Beam
    pipeline options (e.g. a Dataflow runner and its options); without a `--runner` among them
    the in-process FnApiRunner is used.

    Raises ValueError when `models` is empty and FileNotFoundError when a SavedModel or the test
    TFRecords are missing, before any TFMA work starts.
    """
    data_location = _check_inputs(models, dataset_dir)
    if baseline is not None and baseline not in models:
        log.warning("evaluate: baseline %r is not among the models (%s); comparing without a baseline",
                    baseline, ", ".join(models))
        baseline = None

    import tensorflow_model_analysis as tfma

    # TFMA refuses a run whose only model is the baseline; alone, it has nothing to be compared with.
    config = eval_config(list(models), baseline if len(models) > 1 else None, min_accuracy)
    shared = [tfma.default_eval_shared_model(eval_saved_model_path=path, model_name=name, eval_config=config)
              for name, path in models.items()]
    tfma_dir = os.path.join(output_dir, TFMA_DIR)
    shutil.rmtree(tfma_dir, ignore_errors=True)  # no stale shards from an earlier run
    started = time.perf_counter()
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, data_location=data_location,
                            output_path=tfma_dir,
                            pipeline_options=pipeline_options(beam_args))
    log.info("evaluate: TFMA over %d models took %.1fs", len(models), time.perf_counter() - started)

    summary = summarize(tfma_dir, list(models), baseline, min_accuracy)
    write_json_atomic(Path(output_dir) / EVAL_SUMMARY_FILE, summary)
    return summary


def load_summary(output_dir: str) -> dict:
    """The summary.json an earlier `evaluate` wrote into `output_dir`."""
    return read_json(Path(output_dir) / EVAL_SUMMARY_FILE)


def eval_config(model_names: list[str], baseline: str | None, min_accuracy: float):
    """The TFMA EvalConfig: the models, overall + per-label slices, the metrics and the accuracy bound."""
    from tensorflow_model_analysis.proto import config_pb2 as c  # tfma.EvalConfig is not exported in 0.52

    overall = c.SlicingSpec()
    metrics = {name: c.MetricConfig(class_name=cls, config=json.dumps({"name": name, **extra}))
               for name, (cls, extra) in SCALAR_METRICS.items()}
    # The bound is on the overall slice only (a threshold without a slice would apply to every label too).
    # With a baseline, TFMA computes diff metrics for every metric; no change threshold is needed for that.
    metrics["accuracy"].per_slice_thresholds.add(slicing_specs=[overall], threshold=c.MetricThreshold(
        value_threshold=c.GenericValueThreshold(lower_bound={"value": min_accuracy})))
    return c.EvalConfig(
        model_specs=[c.ModelSpec(name=name, signature_name=SERVING_SIGNATURE, label_key=LABEL_KEY,
                                 prediction_key=SERVING_OUTPUT, is_baseline=name == baseline)
                     for name in model_names],
        slicing_specs=[overall, c.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=[c.MetricsSpec(metrics=[*metrics.values(), c.MetricConfig(class_name=CONFUSION_PLOT_CLASS)])])


def summarize(tfma_dir: str, model_names: list[str], baseline: str | None, min_accuracy: float) -> dict:
    """Read TFMA's metrics, plots and validation result back into the summary.json structure."""
    import tensorflow_model_analysis as tfma

    def owner(key_model_name: str) -> str:  # with a single model, TFMA leaves the model name out of its keys
        return key_model_name or model_names[0]

    values: dict[tuple, float | None] = {}  # (label or None for overall, model, metric, is_diff) -> value
    for record in tfma.load_metrics(tfma_dir):
        label = _slice_label(record.slice_key)
        for kv in record.metric_keys_and_values:
            values[label, owner(kv.key.model_name), kv.key.name, kv.key.is_diff] = _number(kv.value)

    matrices = {}
    for record in tfma.load_plots(tfma_dir):
        if _slice_label(record.slice_key) is None:
            for kv in record.plot_keys_and_values:
                if kv.key.name == CONFUSION_PLOT_NAME:
                    matrices[owner(kv.key.model_name)] = _confusion_matrix(kv.value)

    validation = tfma.load_validation_result(tfma_dir)
    failed = {owner(f.metric_key.model_name) for s in validation.metric_validations_per_slice for f in s.failures}

    models = {}
    for name in model_names:
        accuracy = values.get((None, name, "accuracy", False))
        count = values.get((None, name, "example_count", False))
        models[name] = {
            "example_count": None if count is None else int(count),
            **{key: values.get((None, name, key, False)) for key in ("accuracy", "loss", "top3_accuracy")},
            "accuracy_diff_vs_baseline": (values.get((None, name, "accuracy", True))
                                          if baseline not in (None, name) else None),
            "blessed": (accuracy is not None and accuracy >= min_accuracy) if name == baseline
                       else name not in failed,
            "per_label_accuracy": {str(d): values.get((str(d), name, "accuracy", False)) for d in range(NUM_CLASSES)},
            "confusion_matrix": matrices.get(name, [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]),
        }
    return {
        "baseline": baseline,
        "test_examples": models[model_names[0]]["example_count"],
        "validation_ok": bool(validation.validation_ok) and all(m["blessed"] for m in models.values()),
        "models": models,
    }


def _check_inputs(models: dict[str, str], dataset_dir: str) -> str:
    """Fail early, naming the path: TFMA's own errors come late and deep inside Beam."""
    import tensorflow as tf

    if not models:
        raise ValueError(f"no models to evaluate on {dataset_dir}")
    for name, path in models.items():
        if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"model {name!r}: no SavedModel at {path}")
    pattern = split_pattern(dataset_dir, TEST_SPLIT)
    if not tf.io.gfile.glob(pattern):
        raise FileNotFoundError(f"no test TFRecords matching {pattern}")
    return pattern


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


def _confusion_matrix(plot_value) -> list[list[int]]:
    """[true][predicted] counts from TFMA's matrix at its single threshold (0.0: always the argmax)."""
    matrix = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for entry in plot_value.multi_class_confusion_matrix_at_thresholds.matrices[0].entries:
        if 0 <= entry.actual_class_id < NUM_CLASSES and 0 <= entry.predicted_class_id < NUM_CLASSES:
            matrix[entry.actual_class_id][entry.predicted_class_id] += round(entry.num_weighted_examples)
    return matrix
