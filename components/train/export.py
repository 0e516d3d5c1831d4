"""Export a trained Keras model as the SavedModel TFMA evaluates.

TFMA 0.52 cannot read `.keras` files, and it feeds models serialized
tf.Examples; so the export's `serving_default` parses the examples itself,
with the same decoding the training input uses. A model trained on another
Keras backend is saved as a `.keras` file (its weights mean the same on every
backend) and exported by a TensorFlow process, where TensorFlow is installed:
evaluation runs on TensorFlow whatever trained the model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from optbench.components.shared.devices import has_tensorflow
from optbench.components.shared.schema import (
    KERAS_MODEL_FILE,
    SAVED_MODEL_DIR,
    SERVING_INPUT,
    SERVING_OUTPUT,
    SERVING_SIGNATURE,
)

log = logging.getLogger(__name__)


def export_saved_model(model, path: str) -> str:
    import tensorflow as tf

    from optbench.components.shared.batches import parse_examples

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(examples):
        images, _ = parse_examples(examples, with_labels=False)
        # float32 even under mixed precision: TFMA and the report expect it.
        return {SERVING_OUTPUT: tf.cast(model(images, training=False), tf.float32)}

    # Keep a reference on a trackable so the model's variables are saved with the function.
    module = tf.Module()
    module.model = model
    module.serve = serve
    tf.saved_model.save(module, path, signatures={SERVING_SIGNATURE: serve})
    return path


def export(model, out: Path, backend: str) -> None:
    """The SavedModel of a model trained on `backend`, in `out`; on another backend than TensorFlow, also the
    `.keras` file it is exported from (by a TensorFlow process: Keras has one backend per process)."""
    if backend == "tensorflow":
        export_saved_model(model, str(out / SAVED_MODEL_DIR))
        return
    model.save(out / KERAS_MODEL_FILE)
    if not has_tensorflow():
        log.warning("no TensorFlow here: %s waits for `python -m %s %s`", SAVED_MODEL_DIR, __name__, out)
        return
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    subprocess.run([sys.executable, "-m", __name__, str(out)], check=True, env=env)


def export_keras_file(out: Path) -> None:
    """Export `out`'s .keras file (a model another backend trained) as the SavedModel beside it."""
    import keras

    export_saved_model(keras.saving.load_model(out / KERAS_MODEL_FILE, compile=False), str(out / SAVED_MODEL_DIR))


if __name__ == "__main__":
    export_keras_file(Path(sys.argv[1]))
