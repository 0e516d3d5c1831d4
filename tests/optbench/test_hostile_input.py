"""Hostile input at the command line, in suite files and in run folders: one clear error, nothing written.

Each case runs the real console script, as a user would meet it (docs/threat-model.md lists the entry
points; the bucket's are in test_storage.py, the data's in test_ingest.py, the KFP API's in test_kfp_api.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import optbench

from optbench.components.question import suites
from optbench.components.question.suites import MAX_TRIALS, SuiteError


def refused(result, *messages: str) -> None:
    """A refusal as a user should meet it: exit status non-zero, each message, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


def suite_file(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"optimizers": ["adam", "sgd"], **fields}))
    return path


def test_a_suite_named_with_markup_or_a_path_is_refused_before_any_work(tmp_path):
    for name in ("<script>alert(1)</script>", "../../etc", "a b"):
        result = optbench("run", "--suite", str(suite_file(tmp_path, name=name)), "--output", str(tmp_path / "runs"))
        refused(result, f"name {name!r} is not a plain name")
    label = suite_file(tmp_path, optimizers=[{"name": "adam", "label": "<img src=x onerror=alert(1)>"}])
    refused(optbench("run", "--suite", str(label), "--output", str(tmp_path / "runs")), "label")
    assert not (tmp_path / "runs").exists()


def test_a_huge_suite_stops_with_its_count_and_how_to_raise_the_limit(tmp_path):
    grid = [round(1e-4 * (i + 1), 6) for i in range(99)]
    path = suite_file(tmp_path, name="huge", lr_grid=grid, seeds=50)
    result = optbench("run", "--suite", str(path), "--output", str(tmp_path / "runs"))
    refused(
        result,
        "expands to 9,950 trials (199 optimizer settings x 1 batch sizes x 50 seeds), "
        f"more than max_trials {MAX_TRIALS}; if you mean it, add `max_trials: 9950` to the suite",
    )
    assert not (tmp_path / "runs").exists()
    raised = yaml.safe_load(path.read_text()) | {"max_trials": 9950}
    assert len(suites.expand(suites.validate(raised, "huge"))) == 9950  # adam's default 0.001 is in the grid
    with pytest.raises(SuiteError, match="max_trials must be an integer in 1-100000"):
        suites.validate(raised | {"max_trials": 10**9}, "huge")


def test_a_suite_file_too_large_to_be_one_is_refused_without_parsing_it(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("optimizers: [adam]\n" + "#" * (2 << 20))
    refused(
        optbench("run", "--suite", str(path), "--output", str(tmp_path / "runs")), "holds more than 1,048,576 bytes"
    )


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "../../nope"])
def test_a_run_id_with_a_path_in_it_is_refused_everywhere(tmp_path, run_id):
    """(RUN of `artifacts` and `report` may also be a run folder: a path that is one is read as such.)"""
    runs = tmp_path / "runs"
    (tmp_path / "escape").mkdir()
    (tmp_path / "escape" / "run.json").write_text(json.dumps({"status": "failed", "config": {}}))
    for resume in (run_id, "..", "", str(tmp_path / "escape")):
        refused(optbench("run", "--resume", resume, "--output", str(runs)), "is not a plain name")
    refused(optbench("artifacts", "--root", str(runs), "ls", run_id), "not a plain name")
    refused(optbench("report", "--compare", run_id, "also", "--runs-dir", str(runs)), "not a plain name")
    assert not runs.exists()


def test_a_publish_destination_that_is_not_a_bucket_is_refused_before_the_run(tmp_path):
    for dest in ("gs://bkt/../x", "s3://bkt", "gs://UPPER", ""):
        refused(optbench("run", "--publish", dest, "--output", str(tmp_path / "runs")), "gs://")
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_with_a_forged_record_is_refused_with_its_fault(tmp_path):
    runs = tmp_path / "runs"
    for run_id, record in (("r1", [1, 2]), ("r2", {"status": "failed", "config": {"suite": "x", "rm_rf": True}})):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "run.json").write_text(json.dumps(record))
    refused(optbench("run", "--resume", "r1", "--output", str(runs)), "not a run record")
    refused(optbench("run", "--resume", "r2", "--output", str(runs)), "its config is not one this optbench runs")
    (runs / "r1" / "run.json").write_text(json.dumps({"run_id": "../../x", "status": "succeeded"}))
    (runs / "r2" / "run.json").write_text(json.dumps({"run_id": "r2", "status": "succeeded"}))
    (runs / "r2" / "report").mkdir()
    (runs / "r2" / "report" / "comparison.json").write_text(json.dumps({"rows": "<b>"}))
    refused(
        optbench("report", "--compare", "r1", "r2", "--runs-dir", str(runs)), "run_id '../../x' is not a plain name"
    )
    (runs / "r1" / "run.json").write_text(json.dumps({"run_id": "r1", "status": "succeeded"}))
    refused(optbench("report", "--compare", "r1", "r2", "--runs-dir", str(runs)), "comparison.json: not a comparison")
    assert not (runs / "trend").exists()
