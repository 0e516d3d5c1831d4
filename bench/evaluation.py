"""What the evaluate step costs: its work (inference, then TFMA) against the plain Keras-style evaluation.

Both sides load the same SavedModels, read the same test TFRecords and
produce the same numbers: overall accuracy, loss and top-3 accuracy,
accuracy per true label, and the confusion matrix. Ours is the evaluate
step's own function (without a baseline, so no diff metrics); the plain side calls each model's serving signature over
batches of serialized examples and does the arithmetic in numpy, which is
what `model.evaluate` does for these metrics. The results are returned
beside the timings, with their largest disagreement, so a benchmark that
compared different work would show it.
"""

from __future__ import annotations

import time

import numpy as np

from optbench.components.evaluate.evaluate import check_inputs, run_evaluate
from optbench.components.shared.predictions import example_batches, probabilities
from optbench.components.shared.schema import NUM_CLASSES

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] in its cross-entropy


def keras_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """The summary.json numbers of one model, from its probabilities [N, classes] and the labels [N]."""
    true_p = np.clip(probs[np.arange(len(labels)), labels], EPSILON, 1 - EPSILON)
    top3 = np.argsort(probs, axis=1)[:, -3:]
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return {
        "accuracy": float(np.trace(matrix) / len(labels)),
        "loss": float(-np.mean(np.log(true_p))),
        "top3_accuracy": float(np.mean(np.any(top3 == labels[:, None], axis=1))),
        "per_label_accuracy": {str(d): float(matrix[d, d] / max(matrix[d].sum(), 1)) for d in range(NUM_CLASSES)},
        "confusion_matrix": matrix.tolist(),
    }


def bench_evaluation(
    models: dict[str, str], dataset_dir: str, work_dir: str, beam_args: list[str] | None = None
) -> dict:
    """Time the evaluate step's work and the plain evaluation of `models` (name -> SavedModel) on the test split.

    Returns {"models", "examples", "evaluate_seconds" (the step: inference, scored examples, TFMA, digest),
    "tfma_seconds" (TFMA's share), "keras_seconds", "ratio" (evaluate / plain), "max_accuracy_difference",
    "max_loss_difference"}. The step's output goes to `work_dir`.
    """
    started = time.perf_counter()
    summary = run_evaluate(models, dataset_dir, work_dir, beam_args=beam_args)
    evaluate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    batches, labels = example_batches(check_inputs(models, dataset_dir))
    plain = {name: keras_metrics(probabilities(path, batches), labels) for name, path in models.items()}
    keras_seconds = time.perf_counter() - started

    tfma = summary["models"]

    def largest_difference(key: str) -> float | None:  # None for a diverged model's NaN
        gaps = [
            abs(tfma[n][key] - plain[n][key]) for n in models if tfma[n][key] is not None and np.isfinite(plain[n][key])
        ]
        return max(gaps, default=None)

    return {
        "models": len(models),
        "examples": int(len(labels)),
        "evaluate_seconds": evaluate_seconds,
        "tfma_seconds": summary["tfma_seconds"],
        "keras_seconds": keras_seconds,
        "ratio": evaluate_seconds / keras_seconds,
        "max_accuracy_difference": largest_difference("accuracy"),
        "max_loss_difference": largest_difference("loss"),
    }
