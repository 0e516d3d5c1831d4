"""The `optbench` command as a user runs it: a real subprocess of the console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from helpers import OPTBENCH, optbench
from kfp_api_double import KfpApiDouble


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
        (["--mlflow-uri", "https://me:secret@mlflow.example"], "--mlflow-uri must not carry credentials"),
        (["--mlflow-uri", "mlflow.example"], "give a tracking URI such as http://host:5000"),
        (["--mlflow-uri", "http://:5000"], "give a tracking URI such as http://host:5000"),
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
            [OPTBENCH, "runs", "--live", "--host", api.url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},  # kfp reads and writes ~/.config/kfp
        )
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: the KFP API at {api.url} answered list_runs with an unusable response: ")
    assert "Content-Type text/html" in line and "<title>Sign in" in line


def _plan_lines(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}


def test_estimate_prices_a_suite_from_a_runs_per_step_costs(tmp_path, idx_source):
    """1,200 training examples, 10% held out: 1,080 train; batch 64 -> 17 steps an epoch, 3 epochs, 5 seeds."""
    costs = tmp_path / "step_cost.json"
    costs.write_text(
        json.dumps(
            {
                "device": "GPU",
                "device_name": "H100",
                "variants": {"adam": {"seconds_per_step": 0.002}, "sgd": {"seconds_per_step": 0.001}},
            }
        )
    )
    args = ["estimate", "--optimizers", "adam,sgd", "--seeds", "5", "--epochs", "3", "--data-source", str(idx_source)]
    result = optbench(*args, "--costs-from", str(costs), "--parallel", "2", "--gpus", "1")
    lines = _plan_lines(result)
    assert "10 trials" in result.stdout and "1,080 training examples" in result.stdout and "H100" in result.stdout
    assert lines["adam"][1:4] == ["5", "51", "2.00"] and lines["sgd"][1:4] == ["5", "51", "1.00"]
    assert "510 steps" in result.stdout
    # A pod per trial: 5 adam pods of 60.102 s and 5 sgd pods of 60.051 s, longest first over 2 slots: 5 pods each,
    # 300.4 s; 10 pods of about 60.08 s on 1 GPU each: 0.167 GPU-hours.
    assert "10 pods, about 5:00 of wall time, 0.17 GPU-hours" in result.stdout
    # Packed, as many pods as run at once: 5 trials each (3 adam + 2 sgd, and 2 + 3), one start-up a pod: 60.4 s
    # and 60.36 s side by side, 120.8 s on GPUs: 0.034 GPU-hours.
    assert "packed, up to 5 trials per pod in turn:" in result.stdout
    assert "2 pods, about 1:00 of wall time, 0.03 GPU-hours" in result.stdout
    assert "seeds until decided" not in result.stdout
    # up to 7 seeds: two more rounds of both variants, 51 steps x (2 + 1) ms each
    result = optbench(*args, "--costs-from", str(costs), "--until-decided", "--max-seeds", "7")
    assert "up to 2 more round(s) of one seed each, at most 4 more trials and 0:00 more" in result.stdout


def test_estimate_measures_the_per_step_costs_here_without_a_run(idx_source):
    result = optbench("estimate", "--optimizers", "adam,sgd", "--model", "mlp", "--data-source", str(idx_source))
    lines = _plan_lines(result)
    assert "CPU, here, now" in result.stdout
    assert float(lines["adam"][3]) > 0 and float(lines["sgd"][3]) > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parallel", "0"], "--parallel must be at least 1"),
        (["--costs-from", "/nonexistent/step_cost.json"], "not a step-cost record"),
        (["--costs-from", "{folder}"], "0 step_cost.json files under"),
        (["--optimizers", "adam,lion", "--costs-from", "{costs}"], "lack variant(s) lion"),
    ],
)
def test_estimate_refuses_wrong_values_in_one_line(tmp_path, idx_source, args, message):
    costs = tmp_path / "step_cost.json"
    costs.write_text(json.dumps({"variants": {"adam": {"seconds_per_step": 0.002}}}))
    args = [a.replace("{costs}", str(costs)).replace("{folder}", str(tmp_path / "empty")) for a in args]
    (tmp_path / "empty").mkdir()
    result = optbench("estimate", "--data-source", str(idx_source), "--costs-from", str(costs), *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_run_says_what_changed_since_the_suites_previous_run_or_that_nothing_did(tmp_path, capsys):
    from optbench.cli.run import _echo_changes

    changes = tmp_path / "changes.json"
    for flags, said in (([], "since run r1: nothing changed\n"), ([{"text": "sgd: lr"}], "1 change(s)\n  - sgd: lr\n")):
        changes.write_text(json.dumps({"since": {"run_id": "r1"}, "flags": flags}))
        _echo_changes(changes)
        assert capsys.readouterr().out.endswith(said)
    changes.write_text(json.dumps({"since": None, "flags": []}))  # the suite's first run: nothing to compare with
    _echo_changes(changes)
    assert capsys.readouterr().out == ""
