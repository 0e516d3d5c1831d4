"""What TFMA costs: one TFMA evaluation against the plain Keras-style evaluation of the same models and data.

Both sides load the same SavedModels, read the same test TFRecords and
produce the same numbers: overall accuracy, loss and top-3 accuracy,
accuracy per true label, and the confusion matrix. The TFMA side is the
evaluate step's own configuration (`eval_config`, without a baseline, so no
diff metrics); the plain side calls each model's serving signature over
batches of serialized examples and does the arithmetic in numpy, which is
what `model.evaluate` does for these metrics. The results are returned
beside the timings, with their largest disagreement, so a benchmark that
compared different work would show it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from optbench.components.evaluate.evaluate import check_inputs, eval_config, run_tfma, summarize
from optbench.components.evaluate.predict import example_batches, probabilities
from optbench.components.shared.artifacts import split_files
from optbench.components.shared.schema import NUM_CLASSES, TEST_SPLIT, TFMA_DIR

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
    """Time TFMA and the plain evaluation of `models` (name -> SavedModel) on the test split of `dataset_dir`.

    Returns {"models", "examples", "tfma_seconds", "keras_seconds", "ratio" (TFMA / plain),
    "max_accuracy_difference", "max_loss_difference"}. TFMA's output goes to `work_dir/tfma/`.
    """
    data_location = check_inputs(models, dataset_dir)
    tfma_dir = str(Path(work_dir) / TFMA_DIR)
    tfma_seconds = run_tfma(models, eval_config(list(models), None), data_location, tfma_dir, beam_args)

    started = time.perf_counter()
    batches, labels = example_batches(split_files(dataset_dir, TEST_SPLIT))
    plain = {name: keras_metrics(probabilities(path, batches), labels) for name, path in models.items()}
    keras_seconds = time.perf_counter() - started

    tfma = summarize(tfma_dir, list(models), None)["models"]

    def largest_difference(key: str) -> float | None:  # None for a diverged model's NaN
        gaps = [
            abs(tfma[n][key] - plain[n][key]) for n in models if tfma[n][key] is not None and np.isfinite(plain[n][key])
        ]
        return max(gaps, default=None)

    return {
        "models": len(models),
        "examples": int(len(labels)),
        "tfma_seconds": tfma_seconds,
        "keras_seconds": keras_seconds,
        "ratio": tfma_seconds / keras_seconds,
        "max_accuracy_difference": largest_difference("accuracy"),
        "max_loss_difference": largest_difference("loss"),
    }
