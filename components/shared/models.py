"""The model zoo: the networks of the seed documents.

Every model takes a batch of 28x28x1 float images in 0-255 and rescales
inside, so the SavedModel we export needs no preprocessing beside it.
"""

from __future__ import annotations

from collections.abc import Callable

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


def build(name: str):
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}") from None
