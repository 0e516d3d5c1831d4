"""Per-example predictions of every trial on the test split, for the paired significance tests.

TFMA reports aggregates only; a paired test (McNemar, a paired bootstrap)
needs to know, for each test example, which models got it right. So the
evaluate step also runs each SavedModel's `serving_default` over the same
serialized test examples TFMA reads, in the same file order, and keeps the
predicted class of each: `predictions.npz`, beside summary.json.

The file holds `labels` (int64 [N]), `trials` (str [T]) and `predicted`
(int16 [T, N], the argmax class, -1 where the model's output was not finite:
a diverged model, whose argmax would otherwise silently read as class 0).

Reading it needs only numpy, so the report step can load it without
TensorFlow; TensorFlow is imported inside the functions that run models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.schema import LABEL_KEY, SERVING_INPUT, SERVING_OUTPUT, SERVING_SIGNATURE

PREDICTIONS_FILE = "predictions.npz"
NOT_FINITE = -1  # the predicted class recorded for an example whose probabilities were NaN or inf
BATCH_SIZE = 1024


@dataclass(frozen=True)
class Predictions:
    """Which class each trial predicted for each test example, and the true labels."""

    labels: np.ndarray  # int64 [N]
    predicted: dict[str, np.ndarray]  # trial -> int16 [N]

    def correct(self, trial: str) -> np.ndarray:
        """bool [N]: whether `trial` predicted each example's label (never true for a non-finite output)."""
        return self.predicted[trial] == self.labels

    def finite(self, trial: str) -> bool:
        """Whether every output of `trial` was a finite probability vector."""
        return bool(np.all(self.predicted[trial] != NOT_FINITE))


def example_batches(test_files: list[str], batch_size: int = BATCH_SIZE) -> tuple[list, np.ndarray]:
    """The serialized test examples of `test_files` (read in the given order) in batches, and their labels."""
    import tensorflow as tf

    batches, labels = [], []
    for serialized in tf.data.TFRecordDataset(test_files).batch(batch_size):
        batches.append(serialized)
        parsed = tf.io.parse_example(serialized, {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)})
        labels.append(parsed[LABEL_KEY].numpy())
    return batches, np.concatenate(labels) if labels else np.zeros(0, np.int64)


def probabilities(saved_model_path: str, batches: list) -> np.ndarray:
    """float32 [N, classes]: the SavedModel's serving signature over every batch, as TFMA calls it."""
    import tensorflow as tf

    serve = tf.saved_model.load(saved_model_path).signatures[SERVING_SIGNATURE]
    return np.concatenate([serve(**{SERVING_INPUT: b})[SERVING_OUTPUT].numpy() for b in batches])


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """int16 [N]: the argmax class per row, NOT_FINITE where a row holds NaN or inf."""
    classes = probs.argmax(axis=1).astype(np.int16)
    classes[~np.isfinite(probs).all(axis=1)] = NOT_FINITE
    return classes


def save(path: str | Path, predictions: Predictions) -> Path:
    """Write predictions.npz (via a temporary name, so a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    trials = list(predictions.predicted)
    n = len(predictions.labels)
    np.savez_compressed(tmp, labels=predictions.labels.astype(np.int64), trials=np.array(trials, dtype=str),
                        predicted=np.stack([predictions.predicted[t] for t in trials]).astype(np.int16)
                        if trials else np.zeros((0, n), np.int16))
    tmp.replace(path)
    return path


def load(path: str | Path) -> Predictions:
    """Read a predictions.npz written by `save`."""
    with np.load(path, allow_pickle=False) as data:
        trials = [str(t) for t in data["trials"]]
        return Predictions(labels=data["labels"], predicted=dict(zip(trials, data["predicted"])))
