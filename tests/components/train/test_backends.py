"""Training on Keras 3's backends: the same trial on TensorFlow and on JAX learns the same, and JAX trains where
TensorFlow is absent.

Keras picks its backend once per process, so each trial trains in a fresh process, as a training task does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from helpers import single_trial

from optbench.components.init_model.init_model import run_init_model
from optbench.components.shared.schema import HISTORY_FILE, KERAS_MODEL_FILE, SAVED_MODEL_DIR

# Two epochs of the MLP on 1,000 digits, scored on 200: the backends differ in their dropout masks and float
# rounding, not in what the network learns, so validation accuracy agrees to within a few of those digits.
ACCURACY_TOLERANCE = 0.03

TRAIN = """
import json, sys
{before}
from optbench.components.train.train import run_train
history = run_train(*sys.argv[1:4], json.loads(sys.argv[4]), epochs=2, threads=1, backend=sys.argv[5])
print(json.dumps({{"history": history, "tensorflow": "tensorflow" in sys.modules}}))
"""
NO_TENSORFLOW = """
import importlib.abc
class NoTensorFlow(importlib.abc.MetaPathFinder):  # as on a machine without it: every import of it fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTensorFlow())
"""


@pytest.fixture(scope="module")
def initial(tmp_path_factory):
    out = tmp_path_factory.mktemp("initial")
    run_init_model("mlp", seed=3, output_dir=str(out))
    return out


def train(tiny_dataset, initial, out, backend: str, before: str = "") -> dict:
    trial = single_trial("adam", seed=3)
    script = textwrap.dedent(TRAIN.format(before=before))
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_dataset), str(initial), str(out), json.dumps(trial), backend],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_trial_on_tensorflow_and_on_jax_reaches_the_same_accuracy(tiny_dataset, initial, tmp_path):
    tf = train(tiny_dataset, initial, tmp_path / "tensorflow", "tensorflow")["history"]
    jax = train(tiny_dataset, initial, tmp_path / "jax", "jax")["history"]
    assert (tf["backend"], jax["backend"]) == ("tensorflow", "jax")
    for a, b in zip(tf["epochs"], jax["epochs"], strict=True):
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= ACCURACY_TOLERANCE, (a, b)
    assert jax["epochs"][-1]["val_accuracy"] > 0.5, "it learned"
    assert tf["optimizer_state_bytes"] == jax["optimizer_state_bytes"] > 0
    # evaluation reads a SavedModel whatever trained the model: the JAX one is exported by a TensorFlow process
    for backend in ("tensorflow", "jax"):
        assert (tmp_path / backend / SAVED_MODEL_DIR / "saved_model.pb").is_file()
        assert json.loads((tmp_path / backend / HISTORY_FILE).read_text())["backend"] == backend
    assert (tmp_path / "jax" / KERAS_MODEL_FILE).is_file() and not (tmp_path / "tensorflow" / KERAS_MODEL_FILE).exists()


def test_jax_trains_where_tensorflow_is_absent(tiny_dataset, initial, tmp_path):
    done = train(tiny_dataset, initial, tmp_path, "jax", before=NO_TENSORFLOW)
    assert not done["tensorflow"], "no TensorFlow was imported"
    assert done["history"]["status"] == "ok" and len(done["history"]["epochs"]) == 2
    assert (tmp_path / KERAS_MODEL_FILE).is_file(), "the model, for a TensorFlow machine to export"
    assert not (tmp_path / SAVED_MODEL_DIR).exists()
