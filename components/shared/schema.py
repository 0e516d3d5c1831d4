"""The data contract between steps, and the name of every file a step writes (see docs/artifacts.md).

Stated once here so that no two steps, nor the code that publishes or reads a
run, can disagree on a feature name, an image shape or a file name.
"""

from __future__ import annotations

IMAGE_KEY = "image"
LABEL_KEY = "label"
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

SPLITS = ("train", "validation", "test")
TEST_SPLIT = SPLITS[2]

# plan -> plan/: the validated suite, the settings, the trials
PLAN_FILE = "plan.json"
# ingest -> dataset/
STATS_FILE = "stats.json"
# init_model -> initial/seed-<seed>/
INITIAL_WEIGHTS_FILE = "model.weights.h5"
INITIAL_MODEL_FILE = "model.json"
INITIAL_ARCHITECTURE_FILE = "architecture.json"  # the Keras config every seed's model is rebuilt from
# train -> model/ (one trial), or model/<trial>/ for each trial of a pack
PACK_KEY = "pack"  # a training task's item that is a pack: {"pack": [trial, ...]}
HISTORY_FILE = "history.json"
SAVED_MODEL_DIR = "saved_model"
KERAS_MODEL_FILE = "model.keras"  # a model trained on a backend other than TensorFlow, the SavedModel's source
TENSORBOARD_DIR = "tensorboard"  # Keras's event files: train/ and validation/, a scalar per metric and epoch
# decide -> rounds/: the sequential test's record, the predictions of every trial scored so far, the rounds' models
SEQUENTIAL_JSON = "sequential.json"
ROUND_PREDICTIONS_FILE = "scored.npz"
ROUND_MODELS_DIR = "models"  # a copy of each round's models, <trial>/ as the train step writes them
# step_cost -> step_cost/
STEP_COST_FILE = "step_cost.json"
# evaluate -> evaluation/
EVAL_SUMMARY_FILE = "summary.json"
PREDICTIONS_FILE = "predictions.npz"
TFMA_DIR = "tfma"
SCORED_FILE = "scored.tfrecord"  # every test example's label and each model's probabilities: TFMA's input
# report -> report/
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
COMPARISON_JSON = "comparison.json"
COMPARISON_CSV = "comparison.csv"
SIGNIFICANCE_JSON = "significance.json"
RECORD_JSON = "record.json"  # what later runs of the suite read
CHANGES_JSON = "changes.json"  # what changed since the suite's previous run
# and TENSORBOARD_DIR/<trial>/: every trial's event files, for one `tensorboard --logdir`

# A run's folder, <root>/<run_id>/: its record of settings and status, and the report step's
# folder. The report step reads earlier runs' records at <history root>/<run_id>/REPORT_DIR/RECORD_JSON.
RUN_JSON = "run.json"
REPORT_DIR = "report"

# What a blessing means unless a suite says otherwise (plan fills it in, the report names it): clearly better
# than chance (twice the 0.1 of ten classes) and not far below the baseline. A blessing that Adadelta's 0.39
# passes next to SGD's 0.92 tells nobody anything. A suite lifts a bound with `min_accuracy: 0` or
# `max_drop_vs_baseline: 1`.
DEFAULT_THRESHOLDS = {"min_accuracy": 0.2, "max_drop_vs_baseline": 0.1}

# The serving signature every trained model exports (it parses tf.Examples), and the evaluate step calls.
SERVING_SIGNATURE = "serving_default"
SERVING_INPUT = "examples"
SERVING_OUTPUT = "probabilities"


def split_pattern(dataset_dir: str, split: str) -> str:
    """Glob of the TFRecord shards of one split."""
    return f"{dataset_dir}/{split}/part-*.tfrecord"


def shard_path(dataset_dir: str, split: str, shard: int, shards: int) -> str:
    """The file of one TFRecord shard; `split_pattern` matches every one."""
    return f"{dataset_dir}/{split}/part-{shard:05d}-of-{shards:05d}.tfrecord"
