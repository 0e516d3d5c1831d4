"""The model zoo (the networks of the seed documents), and the user's own network.

Every model takes a batch of 28x28x1 float images in 0-255 and rescales
inside, so the SavedModel we export needs no preprocessing beside it.

The user's own model (`--model module:function` or `--model path.keras`) is
loaded once, where the run is planned, checked, wrapped to that contract
(pixels rescaled to [0, 1], reshaped to 28x28 if it wants that, a softmax
after logits) and turned into its Keras architecture config: JSON that
travels in the pipeline's parameters, so a task on a cluster rebuilds the
very same network without the user's files. Weights never travel: each seed's
initial weights are drawn once by the init step, as for the built-in models.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from optbench.components.shared.schema import IMAGE_SHAPE, NUM_CLASSES


def _input():
    import keras

    inp = keras.Input(shape=(*IMAGE_SHAPE, 1), name="image")
    return inp, keras.layers.Rescaling(1.0 / 255)(inp)


def mlp():
    """The assignment seed: Flatten, Dense 128 relu, Dense 10 softmax."""
    import keras
    from keras import layers

    inp, x = _input()
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    return keras.Model(inp, layers.Dense(NUM_CLASSES, activation="softmax")(x), name="mlp")


def cnn():
    """The article seed: Conv2D 32 3x3, MaxPool 2, Dropout .25, Dense 256, Dropout .5."""
    import keras
    from keras import layers

    inp, x = _input()
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inp, layers.Dense(NUM_CLASSES, activation="softmax")(x), name="cnn")


def rnn():
    """A recurrent reader: each image as 28 rows of 28 pixels through a GRU(128)."""
    import keras
    from keras import layers

    inp, x = _input()
    x = layers.Reshape(IMAGE_SHAPE)(x)
    x = layers.GRU(128)(x)
    return keras.Model(inp, layers.Dense(NUM_CLASSES, activation="softmax")(x), name="rnn")


MODELS: dict[str, Callable] = {"mlp": mlp, "cnn": cnn, "rnn": rnn}


def is_builtin(spec: str) -> bool:
    return spec in MODELS


def looks_like_model(spec: str) -> bool:
    """A built-in name, `module:function` or a .keras file: what --model and a suite's model: take."""
    return isinstance(spec, str) and (is_builtin(spec) or spec.endswith(".keras") or ":" in spec.strip(":"))


def build(name: str, config: str = ""):
    """The built-in model `name`, or the network whose architecture config is `config` (from `custom`)."""
    if config:
        import keras

        return keras.models.model_from_json(config)
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid: {', '.join(MODELS)}, module:function or a .keras file"
        ) from None


def custom(spec: str) -> tuple[str, str]:
    """(name, architecture config JSON) of the user's model `spec`, checked and wrapped to optbench's contract.

    Raises ValueError naming the model and the check that failed.
    """
    import keras
    from keras import layers

    model = _load(spec)
    if not isinstance(model, keras.Model):
        raise ValueError(f"--model {spec}: load check failed: got {type(model).__name__}, not a Keras model")
    if not model.built or not model.inputs:
        raise ValueError(f"--model {spec}: input check failed: the model has no input shape (give it a keras.Input)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"--model {spec}: input check failed: "
            f"one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if shape not in (IMAGE_SHAPE, (*IMAGE_SHAPE, 1)):
        raise ValueError(f"--model {spec}: input shape check failed: {shape}, expected (28, 28) or (28, 28, 1)")
    out = tuple(model.outputs[0].shape[1:])
    if out != (NUM_CLASSES,):
        raise ValueError(
            f"--model {spec}: output check failed: {out}, expected ({NUM_CLASSES},) probabilities or logits"
        )
    if not model.trainable_weights:
        raise ValueError(f"--model {spec}: weights check failed: the model has no trainable weights")
    inp = keras.Input(shape=(*IMAGE_SHAPE, 1), name="image")
    x = layers.Rescaling(1.0 / 255)(inp)
    if shape == IMAGE_SHAPE:
        x = layers.Reshape(IMAGE_SHAPE)(x)
    y = model(x)
    if getattr(model.layers[-1], "activation", None) is not keras.activations.softmax:
        y = layers.Softmax()(y)  # logits (or another activation): the pipeline trains and evaluates probabilities
    wrapped = keras.Model(inp, y, name=model.name)
    config = wrapped.to_json()
    try:
        keras.models.model_from_json(config)
    except Exception as e:  # noqa: BLE001 - whatever Keras raises, the model cannot travel
        raise ValueError(
            f"--model {spec}: config check failed: the model cannot be rebuilt from its Keras config ({e}); "
            "use built-in Keras layers (no Lambda or unregistered custom layers)"
        ) from None
    return model.name, config


def _load(spec: str):
    """The model a .keras file holds, or what `module:function` (a module name or a .py file) returns."""
    import keras

    if spec.endswith(".keras"):
        if not Path(spec).is_file():
            raise ValueError(f"--model {spec}: load check failed: no such file")
        try:
            return keras.saving.load_model(spec, compile=False)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"--model {spec}: load check failed: {e}") from None
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"unknown model {spec!r}; valid: {', '.join(MODELS)}, module:function or a .keras file")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            loader = importlib.util.spec_from_file_location(f"optbench_user_model_{path.stem}", path)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot import {path} as a module")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            try:
                module = importlib.import_module(module_name)
            finally:
                sys.path.pop(0)
        return getattr(module, function)()
    except Exception as e:  # noqa: BLE001 - the user's code: any error is a load failure
        raise ValueError(f"--model {spec}: load check failed: {type(e).__name__}: {e}") from None
