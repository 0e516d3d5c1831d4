"""The machine a training step runs on: TensorFlow's share of it, and its name for the record.

Training and the step-cost step configure TensorFlow the same way, so that a
step's measured cost is the cost of a step as the trials trained it.
"""

from __future__ import annotations


def configure_threads(threads: int | None) -> None:
    """Give TF a share of the cores, and of the GPU: locally two training tasks run side by side.

    TensorFlow takes all of a GPU's memory by default, which would fail the
    second task on a shared GPU; memory growth lets both fit.
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads))


def describe_device() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"device": "CPU", "device_name": None}
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"device": "GPU", "device_name": details.get("device_name", gpus[0].name)}
