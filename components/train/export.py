"""Export a trained Keras model as the SavedModel TFMA evaluates.

TFMA 0.52 cannot read `.keras` files, and it feeds models serialized
tf.Examples; so the export's `serving_default` parses the examples itself,
with the same decoding the training input uses.
"""

from __future__ import annotations

from optbench.components.shared.schema import SERVING_INPUT, SERVING_OUTPUT, SERVING_SIGNATURE


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
