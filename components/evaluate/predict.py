"""Run every trained model over the test examples once: TFMA's input and the predictions file both come from it.

Each SavedModel's `serving_default` sees the serialized test examples in file
order. Its probabilities go into the scored examples TFMA evaluates (as
precomputed predictions, so TFMA never loads a model: on Dataflow its workers
need no model files) and its argmax class into the predictions file
(`Predictions`).
"""

from __future__ import annotations

import numpy as np

from optbench.components.shared.predictions import NOT_FINITE
from optbench.components.shared.schema import LABEL_KEY, SERVING_INPUT, SERVING_OUTPUT, SERVING_SIGNATURE

BATCH_SIZE = 1024


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


def probabilities_feature(trial: str) -> str:
    """The feature of the scored examples that holds `trial`'s probabilities (TFMA's prediction_key)."""
    return f"{SERVING_OUTPUT}.{trial}"


def write_scored(labels: np.ndarray, probs: dict[str, np.ndarray], path: str) -> str:
    """Write the scored test examples to TFRecord file `path`: each example's label and every model's probabilities."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as w:
        for i, label in enumerate(labels):
            feature = {LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
            for trial, p in probs.items():
                feature[probabilities_feature(trial)] = tf.train.Feature(float_list=tf.train.FloatList(value=p[i]))
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True))
    return path


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """int16 [N]: the argmax class per row, NOT_FINITE where a row holds NaN or inf."""
    classes = probs.argmax(axis=1).astype(np.int16)
    classes[~np.isfinite(probs).all(axis=1)] = NOT_FINITE
    return classes
