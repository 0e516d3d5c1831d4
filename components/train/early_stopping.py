"""Early stopping across trials: the median stopping rule, as Katib applies it.

After each epoch a trial posts its validation accuracies to a board that every
trial of the run shares. Past its grace period, a trial reads the others'
posts; when at least `min_trials` others have reached the same epoch and its
accuracy is below their median, it stops. Trials that train at the same time
see each other as they go, and a trial that starts later is judged against
those that ran before it, so the rule saves most in large suites.

The board is a folder beside the init step's output, which every trial of a
run receives (and which no other run shares: a cluster never caches init).
It is read and written through TensorFlow's file systems, so it works on a
local disk, in a container with the run's folder mounted, and on gs://.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import statistics

log = logging.getLogger(__name__)

BOARD_DIR = "early-stopping"


def board_of(initial_uri: str) -> str:
    """The run's board: a folder beside the init step's output artifact."""
    return posixpath.join(posixpath.dirname(initial_uri.rstrip("/")), BOARD_DIR)


def should_stop(own: list[float | None], others: list[list[float | None]], rule: dict) -> float | None:
    """The median that `own`'s last validation accuracy fell below, or None to go on.

    `own` and each of `others` are validation accuracies per epoch (None: not finite). Within the grace
    period, or with fewer than `min_trials` others at this epoch, a trial always goes on.
    """
    epoch = len(own)
    if epoch <= rule["grace_epochs"]:
        return None
    peers = [v for o in others if len(o) >= epoch and (v := o[epoch - 1]) is not None]
    if len(peers) < rule["min_trials"]:
        return None
    median = statistics.median(peers)
    return median if own[-1] is None or own[-1] < median else None


def post(board: str, trial: str, accuracies: list[float | None]) -> None:
    """Write this trial's accuracies to the board, whole (a temporary name, then a rename)."""
    import tensorflow as tf

    tf.io.gfile.makedirs(board)
    path = posixpath.join(board, f"{trial}.json")
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(json.dumps({"trial": trial, "val_accuracy": accuracies}))
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def read_others(board: str, trial: str) -> list[list[float | None]]:
    """The other trials' accuracies; a post that is not what `post` writes is skipped, never trusted."""
    import tensorflow as tf

    others = []
    for path in tf.io.gfile.glob(posixpath.join(board, "*.json")):
        try:
            with tf.io.gfile.GFile(path) as f:
                record = json.loads(f.read(1 << 20))
            values = record["val_accuracy"]
            if record["trial"] == trial or not isinstance(values, list):
                continue
            others.append([v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values])
        except (ValueError, KeyError, TypeError, OSError, tf.errors.OpError) as e:
            log.warning("early stopping: skipped %s (%s)", path, e)
    return others
