"""Training: fairness (same initial weights, same data order), outputs, divergence isolation."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import replace

import numpy as np
import pytest
from helpers import single_trial, tensorboard_scalars

from optbench.components.init_model.init_model import run_init_model
from optbench.components.shared import optimizers
from optbench.components.shared.initial import load_initial
from optbench.components.train.train import optimizer_state_bytes, run_train, time_to_accuracy


@pytest.fixture(scope="module")
def initial(tmp_path_factory):
    out = tmp_path_factory.mktemp("initial")
    run_init_model("mlp", seed=7, output_dir=str(out))
    return out


def test_initial_weights_are_one_file_every_optimizer_loads(initial, tmp_path):
    a, info = load_initial(str(initial), 7)
    b, _ = load_initial(str(initial), 7)
    assert info == {"model": "mlp", "seed": 7, "parameters": a.count_params()}
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # A second init with the same seed writes the same weights, even while another thread draws from the
    # process-wide `random` (where Keras takes an unseeded initializer's seed); another seed does not.
    stop = threading.Event()
    drawer = threading.Thread(target=lambda: [random.random() for _ in iter(lambda: stop.wait(0.0001), True)])
    drawer.start()
    try:
        run_init_model("mlp", seed=7, output_dir=str(tmp_path / "same"))
    finally:
        stop.set()
        drawer.join()
    run_init_model("mlp", seed=8, output_dir=str(tmp_path / "other"))
    same, _ = load_initial(str(tmp_path / "same"), 7)
    other, _ = load_initial(str(tmp_path / "other"), 8)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), same.get_weights()))
    assert not all(np.array_equal(x, y) for x, y in zip(a.get_weights(), other.get_weights()))


def _order(dataset_dir, seed, backend="tensorflow", epochs=2):
    """The labels of every epoch's batches, in order, as the training input of `backend` gives them."""
    from optbench.components.shared.batches import epoch_orders, steps_per_epoch, training_input
    from optbench.components.shared.records import read_split

    images, labels = read_split(str(dataset_dir), "train")
    stream = iter(training_input(images, labels, 64, epoch_orders(len(labels), epochs, seed), backend))
    steps = steps_per_epoch(len(labels), 64)
    return [np.concatenate([np.asarray(next(stream)[1]) for _ in range(steps)]) for _ in range(epochs)]


def test_every_optimizer_sees_the_same_data_order_on_every_backend(tiny_dataset):
    first, again = _order(tiny_dataset, seed=5), _order(tiny_dataset, seed=5)
    for a, b, c in zip(first, again, _order(tiny_dataset, seed=5, backend="jax")):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(first[0], first[1]), "each epoch is reshuffled"
    assert not np.array_equal(first[0], _order(tiny_dataset, seed=6)[0])


def test_training_writes_history_and_saved_model(tiny_dataset, initial, tmp_path):
    history = run_train(
        str(tiny_dataset), str(initial), str(tmp_path), single_trial("adam", seed=7, batch_size=32), epochs=2
    )
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk == history
    assert history["status"] == "ok" and history["optimizer_config"] == {"class_name": "Adam", "learning_rate": 0.001}
    assert (history["trial"], history["variant"], history["seed"], history["batch_size"]) == ("adam.s7", "adam", 7, 32)
    assert history["device"] == "CPU" and history["optimizer_state_ratio"] == pytest.approx(2.0)
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert history["train_examples"] == 1000
    assert history["epochs"][-1]["val_accuracy"] > 0.5  # far above chance after 2 epochs on real digits
    assert all(e["examples_per_second"] > 0 and e["seconds"] > 0 for e in history["epochs"])
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()
    # TensorBoard's reader sees the same curves, one point per epoch
    for run, key in (("train", "accuracy"), ("validation", "val_accuracy")):
        points = tensorboard_scalars(tmp_path / "tensorboard" / run, "epoch_accuracy")
        assert points == [(e["epoch"] - 1, pytest.approx(e[key], abs=1e-6)) for e in history["epochs"]]


def test_saved_model_serves_serialized_examples(tiny_dataset, initial, tmp_path, real_digits):
    import tensorflow as tf

    from optbench.components.ingest.examples import to_example_bytes

    run_train(str(tiny_dataset), str(initial), str(tmp_path), single_trial("sgd", seed=7), epochs=1)
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    images, labels = real_digits
    examples = tf.constant([to_example_bytes(images[i], labels[i]) for i in range(5)])
    probs = serve(examples=examples)["probabilities"].numpy()
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_a_diverging_optimizer_is_stopped_and_recorded(tiny_dataset, initial, tmp_path):
    history = run_train(
        str(tiny_dataset),
        str(initial),
        str(tmp_path / "huge"),
        single_trial("sgd", seed=7, learning_rate=1000.0),
        epochs=3,
    )
    assert history["status"] == "diverged" and history["diverged_at_epoch"] == 1
    assert len(history["epochs"]) == 1, "training stops at the epoch it diverged in"
    assert history["fault"]["loss_rose"] and history["fault"]["step"] > 1, "the replay saw the loss climb first"
    # NaN never reaches the JSON as a number.
    json.loads(
        (tmp_path / "huge" / "history.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"non-finite {c} in history.json"),
    )


def test_a_nan_at_the_first_step_before_the_loss_rose_is_a_numerical_fault_not_divergence(
    tiny_dataset, tmp_path, monkeypatch
):
    """Keras's own Adafactor (the registry's is guarded: tests/components/shared/test_optimizers.py) on the MLP with
    one hidden unit no example activates: its update writes NaN into the first kernel at step 1."""
    import keras

    from optbench.components.shared.initial import save_initial
    from optbench.components.shared.models import mlp

    keras.utils.set_random_seed(7)
    model = mlp()
    kernel, bias = model.layers[3].get_weights()  # image, rescaling, flatten, then the hidden Dense layer
    bias[0] = -1e4
    model.layers[3].set_weights([kernel, bias])
    save_initial(model, "mlp", 7, tmp_path / "initial")
    stock = replace(optimizers.REGISTRY["adafactor"], module="keras.optimizers")
    monkeypatch.setitem(optimizers.REGISTRY, "adafactor", stock)

    history = run_train(
        str(tiny_dataset), str(tmp_path / "initial"), str(tmp_path / "out"), single_trial("adafactor", 7), epochs=2
    )
    assert history["status"] == "fault" and history["diverged_at_epoch"] == 1
    assert history["fault"] == {"step": 1, "weight": model.layers[3].kernel.path, "loss_rose": False}


def test_a_loss_that_overflows_while_the_weights_are_finite_is_divergence_not_a_fault(real_digits):
    """SGD at 1000 on the CNN: the first update leaves finite but huge weights, whose outputs overflow the next
    step's loss to a non-finite number before any weight is: the weights grew first, so the loss rose."""
    import keras

    from optbench.components.shared import models
    from optbench.components.train.fault import replay

    images, labels = real_digits[0][:512, ..., None], real_digits[1][:512].astype("int64")

    def build():
        keras.utils.set_random_seed(0)
        model = models.build("cnn")
        model.compile(optimizers.build("sgd", learning_rate=1000.0), "sparse_categorical_crossentropy")
        return model

    found = replay(build, [(images[i : i + 64], labels[i : i + 64]) for i in range(0, 512, 64)], exploded=1e6)
    assert found is not None and found.loss_rose and not found.numerical_fault and found.step > 1


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; valid: sgd, momentum"):
        optimizers.get_spec("adamm")


@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
def test_every_registered_optimizer_builds_with_its_defaults(name):
    opt = optimizers.build(name)
    spec = optimizers.REGISTRY[name]
    assert type(opt).__name__ == spec.class_name
    assert float(opt.learning_rate) == pytest.approx(spec.learning_rate)


def test_full_batch_takes_one_step_per_epoch(tiny_dataset, initial, tmp_path):
    history = run_train(
        str(tiny_dataset), str(initial), str(tmp_path), single_trial("sgd", seed=7, batch_size=0), epochs=2
    )
    assert history["batch_size"] == history["train_examples"] == 1000
    assert history["status"] == "ok" and len(history["epochs"]) == 2


@pytest.mark.parametrize(
    "name, ratio",
    [
        ("sgd", 0.0),
        ("momentum", 1.0),
        ("nesterov", 1.0),
        ("rmsprop", 1.0),
        ("adam", 2.0),
        ("adadelta", 2.0),
        ("nadam", 2.0),
    ],
)
def test_optimizer_state_memory_is_measured_in_parameter_multiples(name, ratio):
    from optbench.components.shared import models

    model = models.build("mlp")
    opt = optimizers.build(name)
    opt.build(model.trainable_variables)
    parameter_bytes = 4 * model.count_params()
    assert optimizer_state_bytes(opt) == pytest.approx(ratio * parameter_bytes)


def test_time_to_accuracy_reports_first_epoch_and_cumulative_seconds():
    epochs = [
        {"epoch": 1, "seconds": 2.0, "val_accuracy": 0.90},
        {"epoch": 2, "seconds": 3.0, "val_accuracy": 0.96},
        {"epoch": 3, "seconds": 4.0, "val_accuracy": None},
        {"epoch": 4, "seconds": 1.0, "val_accuracy": 0.975},
    ]
    assert time_to_accuracy(epochs) == {
        "0.95": {"epoch": 2, "seconds": 5.0},
        "0.97": {"epoch": 4, "seconds": 10.0},
        "0.98": None,
        "0.99": None,
    }
