"""The `optbench` command as a user runs it: a real subprocess of the console script."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OPTBENCH = str(Path(sys.executable).with_name("optbench"))


def optbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OPTBENCH, *args], capture_output=True, text=True, cwd=cwd, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_unknown_optimizer_stops_before_any_work(tmp_path):
    result = optbench("run", "--optimizers", "adam,adamm", "--output", str(tmp_path / "runs"))
    assert result.returncode != 0
    assert "unknown optimizer(s) 'adamm'; valid: sgd, momentum, nesterov" in result.stderr
    assert not (tmp_path / "runs").exists(), "nothing is written for a rejected run"


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "epochs must be an integer in 1-1000, got 0"),
    (["--model", "vgg"], "unknown model 'vgg'; valid: mlp, cnn, rnn"),
    (["--suite", "nope"], "unknown suite 'nope'"),
    (["--seeds", "0"], "seeds must be an integer in 1-50"),
    (["--batch-size", "big"], "expected a positive integer or 'full'"),
    (["--validation-fraction", "1.5"], "validation_fraction must be in (0, 1)"),
])
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


@pytest.mark.e2e
def test_pipeline_runs_end_to_end_with_kfp_local(tmp_path, idx_source):
    """Adam and SGD, 1 epoch, 1,000 genuine digits, through the whole KFP pipeline; plus an SGD with a
    huge learning rate, which diverges without stopping the others."""
    suite = tmp_path / "e2e.yaml"
    suite.write_text("optimizers: [adam, sgd, {name: sgd, label: exploding, learning_rate: 1000}]\n"
                     "model: cnn\nepochs: 1\n")
    result = optbench("run", "--suite", str(suite), "--train-limit", "1000",
                      "--data-source", str(idx_source), "--output", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = run_dir / "report"

    # Progress was visible, then the table and the report's path.
    assert "Executing task 'ingest'" in result.stdout + result.stderr
    assert "train[adam.s0] epoch 1/1" in result.stdout + result.stderr
    assert str(report / "report.html") in result.stdout
    assert "Test acc" in result.stdout and "adam" in result.stdout

    rows = json.loads((report / "comparison.json").read_text())
    assert sorted(r["optimizer"] for r in rows) == ["adam", "exploding", "sgd"]
    exploding = next(r for r in rows if r["optimizer"] == "exploding")
    assert exploding["status"] == "diverged"
    rows = [r for r in rows if r is not exploding]
    for row in rows:
        assert row["epochs"] == 1 and len(row["val_accuracy"]) == 1 and len(row["val_loss"]) == 1
        assert row["train_seconds"] > 0 and row["test_loss"] > 0
    adam = next(r for r in rows if r["optimizer"] == "adam")
    assert adam["test_accuracy"] > 0.5, "far above chance (0.1) after one epoch on real digits"
    with open(report / "comparison.csv") as f:
        assert sorted(r["optimizer"] for r in csv.DictReader(f)) == ["adam", "exploding", "sgd"]
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "adam" in html
    assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"

    # The KFP artifacts: a Metrics artifact per optimizer, the report as Markdown and HTML.
    (kfp_run,) = (run_dir / "pipeline").iterdir()
    metrics = {}
    for output in kfp_run.glob("for-loop-*/train/executor_output.json"):
        metrics.update(json.loads(output.read_text())["artifacts"]["metrics"]["artifacts"][0]["metadata"])
    assert {"val_accuracy", "train_seconds", "optimizer_state_ratio", "diverged"} <= set(metrics)
    assert (kfp_run / "report" / "markdown").read_text() == (report / "report.md").read_text()
    assert (kfp_run / "report" / "html").read_text() == html
