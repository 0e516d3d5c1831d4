"""The GPU bench (bench/gpu.py) at its tiny size on this CPU: both layouts train every trial and learn, TensorFlow
is never imported, and a bad option is a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GPU_BENCH = [sys.executable, "-m", "optbench.bench.gpu"]


def imported_modules(importtime: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from what it wrote to stderr."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime.splitlines() if line.startswith("import time:")}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, idx_source) -> tuple[subprocess.CompletedProcess, dict]:
    """The tiny size on genuine digits, its imports timed; KERAS_BACKEND names another backend, which it overrides."""
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *GPU_BENCH[1:], "--size", "tiny", "--data", idx_source, "--json", out],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(Path(out).read_text())


def test_the_tiny_size_times_both_layouts_on_every_trial(tiny_run):
    result, results = tiny_run
    assert results["complete"] and results["device"]["platform"] == "cpu" and results["examples"] == 500
    assert results["trials"] == ["adam.s0", "sgd.s0"] and not results["whole_suite"]
    for layout in results["layouts"].values():
        assert set(layout["trials"]) == set(results["trials"])
        assert layout["compile_seconds"] > 0 and layout["seconds_per_epoch"] > 0
        assert layout["training_seconds"] > 0 and layout["trial_examples_per_second"] > 0
        assert layout["memory"] == {"peak_bytes_in_use": None, "bytes_limit": None}  # a CPU reports none
    assert "| one at a time |" in result.stdout and "| packed |" in result.stdout


def test_both_layouts_learn_and_end_at_the_same_losses_on_one_device(tiny_run):
    _, results = tiny_run
    initial = results["initial"]["loss"]
    for layout in results["layouts"].values():
        for trial in layout["trials"].values():
            assert trial["loss"] < initial or trial["accuracy"] > 0.1, trial
    assert results["agreement"]["agree"], results["agreement"]


def test_tensorflow_is_never_imported(tiny_run):
    result, _ = tiny_run
    modules = imported_modules(result.stderr)
    assert "keras" in modules and "jax" in modules, "the import times were read"
    assert not [m for m in modules if m == "tensorflow" or m.startswith("tensorflow.")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "huge"], "'huge' is not one of 'tiny', 'full'"),
        (["--epochs", "0"], "0 is not in the range x>=1"),
        (["--data", "/nonexistent"], "Directory '/nonexistent' does not exist"),
    ],
)
def test_a_bad_option_value_is_a_one_line_error(args, message):
    result = subprocess.run([*GPU_BENCH, *args], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_without_the_training_files_is_a_one_line_error(tmp_path):
    result = subprocess.run([*GPU_BENCH, "--data", tmp_path], capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 2 and len(errors) == 1 and "train-images-idx3-ubyte.gz" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_keras_already_on_another_backend_is_refused_in_one_line():
    code = "import keras; from optbench.bench.gpu import main; main(['--size', 'tiny'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": "numpy"},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: Keras was already imported on its numpy backend")
