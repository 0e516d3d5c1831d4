"""The predictions file: which class each trial predicted for each test example.

TFMA reports aggregates only; a paired test (McNemar, a paired bootstrap)
needs to know, for each test example, which models got it right. The evaluate
step writes `predictions.npz` beside summary.json (the evaluate step
runs the models), and the report step reads it for its significance tests.

The file holds `labels` (int64 [N]), `trials` (str [T]) and `predicted`
(int16 [T, N], the argmax class, -1 where the model's output was not finite:
a diverged model, whose argmax would otherwise silently read as class 0).
Reading and writing it needs only numpy; running the models over the test
examples (`example_batches`, `probabilities`, `predict`) needs TensorFlow,
imported only there.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optbench.components.shared.schema import LABEL_KEY, SERVING_INPUT, SERVING_OUTPUT, SERVING_SIGNATURE

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


def to_bytes(predictions: Predictions) -> bytes:
    """The content of predictions.npz."""
    trials = list(predictions.predicted)
    n = len(predictions.labels)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        labels=predictions.labels.astype(np.int64),
        trials=np.array(trials, dtype=str),
        predicted=np.stack([predictions.predicted[t] for t in trials]).astype(np.int16)
        if trials
        else np.zeros((0, n), np.int16),
    )
    return buffer.getvalue()


def load(path: str | Path) -> Predictions:
    """Read a predictions.npz (the content `to_bytes` gives)."""
    with np.load(path, allow_pickle=False) as data:
        trials = [str(t) for t in data["trials"]]
        return Predictions(labels=data["labels"], predicted=dict(zip(trials, data["predicted"])))


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
    """float32 [N, classes]: the SavedModel's serving signature over every batch of serialized examples."""
    import tensorflow as tf

    serve = tf.saved_model.load(saved_model_path).signatures[SERVING_SIGNATURE]
    return np.concatenate([serve(**{SERVING_INPUT: b})[SERVING_OUTPUT].numpy() for b in batches])


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """int16 [N]: the argmax class per row, NOT_FINITE where a row holds NaN or inf."""
    classes = probs.argmax(axis=1).astype(np.int16)
    classes[~np.isfinite(probs).all(axis=1)] = NOT_FINITE
    return classes


def predict(saved_models: dict[str, str], test_files: list[str]) -> Predictions:
    """The predictions of every SavedModel (trial -> path) over the test examples of `test_files`, in file order."""
    batches, labels = example_batches(test_files)
    return Predictions(labels, {t: predicted_classes(probabilities(p, batches)) for t, p in saved_models.items()})
