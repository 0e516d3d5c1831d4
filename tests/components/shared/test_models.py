"""Your own model: `--model module:function` or `--model path.keras`, checked, wrapped and sent as a Keras config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optbench.components.shared import models

USER_MODELS = '''
import keras
from keras import layers


def logits_28x28():
    """28x28 inputs (no channel axis) and 10 logits: the wrapper adds the channel reshape and a softmax."""
    inp = keras.Input((28, 28))
    x = layers.Flatten()(inp)
    return keras.Model(inp, layers.Dense(10)(layers.Dense(32, activation="relu")(x)), name="tiny_logits")


def wrong_input():
    inp = keras.Input((32, 32, 3))
    return keras.Model(inp, layers.Dense(10, activation="softmax")(layers.Flatten()(inp)))


def wrong_outputs():
    inp = keras.Input((28, 28, 1))
    return keras.Model(inp, layers.Dense(5, activation="softmax")(layers.Flatten()(inp)))


def frozen():
    inp = keras.Input((28, 28, 1))
    dense = layers.Dense(10, activation="softmax", trainable=False)
    return keras.Model(inp, dense(layers.Flatten()(inp)))


def with_lambda():
    inp = keras.Input((28, 28, 1))
    x = layers.Lambda(lambda t: t * 2)(layers.Flatten()(inp))
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x))


def no_input_shape():
    return keras.Sequential([layers.Flatten(), layers.Dense(10, activation="softmax")])


def broken():
    raise RuntimeError("the user's bug")
'''


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(USER_MODELS)
    return path


def test_a_module_function_is_checked_wrapped_and_rebuilt_from_its_config(user_module):
    name, config = models.custom(f"{user_module}:logits_28x28")
    assert name == "tiny_logits" and json.loads(config)["class_name"] == "Functional"
    model = models.build(name, config)  # what the init step does on the cluster, from the parameter alone
    assert tuple(model.inputs[0].shape[1:]) == (28, 28, 1)
    out = model.predict(np.full((3, 28, 28, 1), 255.0, np.float32), verbose=0)
    assert out.shape == (3, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5), "logits became probabilities"
    assert model.count_params() == 28 * 28 * 32 + 32 + 32 * 10 + 10


def test_a_keras_file_is_accepted_and_keeps_its_softmax(tmp_path):
    import keras
    from keras import layers

    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inp)
    saved = keras.Model(inp, layers.Dense(10, activation="softmax")(layers.Flatten()(x)), name="small_cnn")
    saved.save(tmp_path / "small.keras")
    name, config = models.custom(str(tmp_path / "small.keras"))
    rebuilt = models.build(name, config)
    assert name == "small_cnn" and rebuilt.count_params() == saved.count_params()
    assert not any(type(layer).__name__ == "Softmax" for layer in rebuilt.layers), "probabilities already"


@pytest.mark.parametrize(
    "function, message",
    [
        ("wrong_input", r"input shape check failed: \(32, 32, 3\), expected \(28, 28\) or \(28, 28, 1\)"),
        ("wrong_outputs", r"output check failed: \(5,\), expected \(10,\)"),
        ("frozen", "weights check failed: the model has no trainable weights"),
        ("with_lambda", "config check failed: the model cannot be rebuilt from its Keras config"),
        ("no_input_shape", "input check failed: the model has no input shape"),
        ("broken", "load check failed: RuntimeError: the user's bug"),
        ("missing", "load check failed: AttributeError"),
    ],
)
def test_a_model_that_cannot_be_trained_fairly_is_refused_naming_the_check(user_module, function, message):
    with pytest.raises(ValueError, match=message) as failed:
        models.custom(f"{user_module}:{function}")
    assert str(failed.value).startswith(f"--model {user_module}:{function}: ")


def test_files_that_are_not_models_are_refused(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.keras: load check failed"):
        models.custom(str(tmp_path / "junk.keras"))
    with pytest.raises(ValueError, match="nope.keras: load check failed: no such file"):
        models.custom(str(tmp_path / "nope.keras"))
    with pytest.raises(ValueError, match="load check failed: FileNotFoundError"):
        models.custom(str(tmp_path / "nope.py:model"))
    with pytest.raises(ValueError, match="load check failed: ModuleNotFoundError"):
        models.custom("no_such_module_here:model")
    with pytest.raises(ValueError, match="unknown model 'resnet'; valid: mlp, cnn, rnn, module:function or a .keras"):
        models.build("resnet")


def test_a_model_that_fails_its_checks_stops_the_run_before_anything_is_written(tmp_path, user_module, idx_source):
    import subprocess
    import sys
    from pathlib import Path

    optbench = str(Path(sys.executable).with_name("optbench"))
    output = tmp_path / "runs"
    result = subprocess.run(
        [optbench, "run", "--model", f"{user_module}:wrong_outputs", "--data-source", str(idx_source)]
        + ["--output", str(output)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "output check failed: (5,), expected (10,)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_a_model_config_that_carries_python_code_is_refused():
    """model_config is a pipeline parameter anyone who may submit a run can set (the KFP UI's form): a Lambda
    layer's bytecode in it is refused by Keras's safe mode, which optbench never turns off."""
    import keras

    with_code = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    with pytest.raises(ValueError, match="arbitrary code execution"):
        models.build("mine", with_code.to_json())
