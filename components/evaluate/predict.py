"""TFMA's input: the scored test examples, every model's probabilities stored beside each label.

TFMA evaluates them as precomputed predictions, so it never loads a model:
on Dataflow its workers need no model files. The models' probabilities come
from one pass over the test examples (`shared.predictions`), which also
gives the predictions file.
"""

from __future__ import annotations

import numpy as np

from optbench.components.shared.schema import LABEL_KEY, SERVING_OUTPUT


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
