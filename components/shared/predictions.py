"""The predictions file: which class each trial predicted for each test example.

TFMA reports aggregates only; a paired test (McNemar, a paired bootstrap)
needs to know, for each test example, which models got it right. The evaluate
step writes `predictions.npz` beside summary.json (the evaluate step
runs the models), and the report step reads it for its significance tests.

The file holds `labels` (int64 [N]), `trials` (str [T]) and `predicted`
(int16 [T, N], the argmax class, -1 where the model's output was not finite:
a diverged model, whose argmax would otherwise silently read as class 0).
Reading and writing it needs only numpy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOT_FINITE = -1  # the predicted class recorded for an example whose probabilities were NaN or inf


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
