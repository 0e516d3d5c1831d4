"""The machine a training step runs on: the Keras backend's share of it, and its name for the record.

Training and the step-cost step configure the backend the same way, so that a
step's measured cost is the cost of a step as the trials trained it.
"""

from __future__ import annotations

import importlib.util
import os
import sys

# XLA's CPU client on one thread, the JAX counterpart of TensorFlow's thread settings.
JAX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def has_tensorflow() -> bool:
    """Whether TensorFlow can be imported here (without importing it): a GPU machine may have JAX only."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ImportError:
        return False


def use_backend(backend: str) -> None:
    """Make `backend` Keras's, before Keras is imported: Keras reads KERAS_BACKEND once, at its import."""
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise RuntimeError(f"Keras is already loaded on {current} in this process; {backend} needs a new process")
    os.environ["KERAS_BACKEND"] = backend


def configure_threads(threads: int | None, backend: str = "tensorflow") -> None:
    """Give the backend a share of the cores, and of the GPU: locally two training tasks run side by side.

    TensorFlow and JAX take all of a GPU's memory by default, which would fail
    the second task on a shared GPU; memory growth (JAX: no preallocation) lets both fit.
    """
    use_backend(backend)
    if backend == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if threads == 1 and "jax" not in sys.modules:
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {JAX_ONE_THREAD}".strip()
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads))


def describe_device(backend: str = "tensorflow") -> dict:
    """{"device": "CPU" or "GPU", "device_name": the GPU's name or None}, as `backend` sees the machine."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        gpu = device.platform == "gpu"
        return {"device": "GPU" if gpu else "CPU", "device_name": device.device_kind if gpu else None}
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"device": "CPU", "device_name": None}
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"device": "GPU", "device_name": details.get("device_name", gpus[0].name)}
