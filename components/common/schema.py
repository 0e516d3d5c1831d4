"""The data contract between steps (see docs/artifacts.md).

Stated once here so that ingest, train and evaluate cannot disagree on a
feature name or an image shape.
"""
from __future__ import annotations

IMAGE_KEY = "image"
LABEL_KEY = "label"
IMAGE_SHAPE = (28, 28)
IMAGE_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
NUM_CLASSES = 10

SPLITS = ("train", "validation", "test")
STATS_FILE = "stats.json"
HISTORY_FILE = "history.json"
SAVED_MODEL_DIR = "saved_model"
INITIAL_WEIGHTS_FILE = "model.weights.h5"
INITIAL_MODEL_FILE = "model.json"
EVAL_SUMMARY_FILE = "summary.json"

# The serving signature every trained model exports, and TFMA reads.
SERVING_SIGNATURE = "serving_default"
SERVING_INPUT = "examples"
SERVING_OUTPUT = "probabilities"


def split_pattern(dataset_dir: str, split: str) -> str:
    """Glob of the TFRecord shards of one split."""
    return f"{dataset_dir}/{split}/part-*.tfrecord"
