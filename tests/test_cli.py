"""The `optbench` command as a user runs it: a real subprocess of the console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_api_double import KfpApiDouble

OPTBENCH = str(Path(sys.executable).with_name("optbench"))


def optbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OPTBENCH, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def test_unknown_optimizer_stops_before_any_work(tmp_path):
    result = optbench("run", "--optimizers", "adam,adamm", "--output", str(tmp_path / "runs"))
    assert result.returncode != 0
    assert "unknown optimizer(s) 'adamm'; valid: sgd, momentum, nesterov" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing is written for a rejected run"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "epochs must be an integer in 1-1000, got 0"),
        (["--model", "vgg"], "unknown model 'vgg'; valid: mlp, cnn, rnn"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--seeds", "0"], "seeds must be an integer in 1-50"),
        (["--batch-size", "big"], "expected a positive integer or 'full'"),
        (["--validation-fraction", "1.5"], "validation_fraction must be in (0, 1)"),
    ],
)
def test_bad_settings_are_named(tmp_path, args, message):
    result = optbench("run", *args, "--output", str(tmp_path / "runs"))
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "runs").exists()


def test_corrupt_source_names_the_file_and_the_check(tmp_path, idx_source):
    bad = tmp_path / "bad"
    shutil.copytree(idx_source, bad)
    raw = (bad / "train-images-idx3-ubyte.gz").read_bytes()
    (bad / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 3])
    result = optbench("run", "--data-source", str(bad), "--output", str(tmp_path / "runs"))
    assert result.returncode != 0
    assert f"{bad}/train-images-idx3-ubyte.gz: not a complete gzip file" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_optimizers_lists_the_registry():
    result = optbench("optimizers")
    assert result.returncode == 0
    assert "momentum   SGD(learning_rate=0.01, momentum=0.9)" in result.stdout
    assert len(result.stdout.splitlines()) == 15


def test_suites_lists_and_shows_the_shipped_suites():
    listed = optbench("suites")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["batch-size", "modern", "seed-000", "seed-004"]
    shown = optbench("suites", "--show", "seed-000")
    assert shown.returncode == 0 and "model: mlp" in shown.stdout


def test_a_kfp_api_answering_a_login_page_ends_in_one_line_naming_it(tmp_path):
    with KfpApiDouble() as api:
        api.faults["/runs"] = "html"
        result = subprocess.run(
            [OPTBENCH, "runs", "--host", api.url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},  # kfp reads and writes ~/.config/kfp
        )
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: the KFP API at {api.url} answered list_runs with an unusable response: ")
    assert "Content-Type text/html" in line and "<title>Sign in" in line
