"""`optbench runs --prune`: the bulk of a suite's older runs goes, what its history reads stays, and nothing is
deleted before the user has seen the list and said --yes."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import fake_run, hold
from report_inputs import VARIANTS, make_run

from optbench.cli.cluster import runs
from optbench.components.history.records import earlier_runs, read_records
from optbench.components.shared.schema import REPORT_DIR, RUN_JSON, TENSORBOARD_DIR
from optbench.layout import CACHE_DIR, MARKER, PIPELINE_DIR
from optbench.local_run import resume_local
from optbench.storage import GcsRun, publish_run

SUITE = "seed-004"
MB = 1_000_000


@pytest.fixture(scope="module")
def made(tmp_path_factory, labels) -> Path:
    """Four runs of one suite, each with 3 MB of bulk: models and data under pipeline/, the task cache, the
    report's TensorBoard copy. The oldest, r-4, failed after its report (a run to resume)."""
    root = tmp_path_factory.mktemp("made") / "runs"
    for run_id in ("r-4", "r-3", "r-2", "r-1"):
        run_dir = make_run(root, run_id, labels, 0.0, 1.0, VARIANTS, {"suite": SUITE})
        for bulk in (PIPELINE_DIR, CACHE_DIR, f"{REPORT_DIR}/{TENSORBOARD_DIR}"):
            (run_dir / bulk / "part").mkdir(parents=True, exist_ok=True)
            (run_dir / bulk / "part" / "blob").write_bytes(b"\0" * MB)
    failed = json.loads((root / "r-4" / RUN_JSON).read_text()) | {"status": "failed"}
    (root / "r-4" / RUN_JSON).write_text(json.dumps(failed))
    return root


@pytest.fixture
def root(made, tmp_path) -> Path:
    """A copy of the four runs, oldest first an hour apart."""
    root = shutil.copytree(made, tmp_path / "runs")
    for age, run_id in enumerate(["r-4", "r-3", "r-2", "r-1"]):
        when = time.time() - 3600 * (4 - age)  # in the past: a prune's own writes come later
        os.utime(root / run_id / RUN_JSON, (when, when))
    return root


def prune(root: Path | str, *args: str):
    return CliRunner().invoke(runs, ["--root", str(root), "--prune", *args], catch_exceptions=False)


def test_the_list_comes_first_and_deletes_nothing(root):
    result = prune(root, "--keep", "2")
    assert result.exit_code == 0, result.output
    assert "would delete 6.0 MB from 2 run(s)" in result.output and "--yes" in result.output
    listed = [line.split()[1] for line in result.output.splitlines() if line.startswith(f"  {SUITE}")]
    assert listed == ["r-4", "r-3"]  # the oldest, oldest first
    assert all((root / r / PIPELINE_DIR).is_dir() for r in ("r-4", "r-3", "r-2", "r-1"))


def test_pruning_frees_the_bulk_and_every_history_still_reads_every_run(root):
    before = {r: earlier_runs(str(root), SUITE, r)[0] for r in ("r-1", "r-2")}
    result = prune(root, "--keep", "2", "--yes")
    assert result.exit_code == 0, result.output
    assert "freed 6.0 MB" in result.output
    for run_id in ("r-4", "r-3"):
        run_dir = root / run_id
        assert not any((run_dir / b).exists() for b in (PIPELINE_DIR, CACHE_DIR, f"{REPORT_DIR}/{TENSORBOARD_DIR}"))
        assert (run_dir / REPORT_DIR / "record.json").is_file() and (run_dir / REPORT_DIR / "report.html").is_file()
        assert json.loads((run_dir / RUN_JSON).read_text())["pruned"]["deleted"] == [
            PIPELINE_DIR,
            CACHE_DIR,
            f"{REPORT_DIR}/{TENSORBOARD_DIR}",
        ]
    with pytest.raises(ValueError, match="run r-4 was pruned: its cache is gone"):
        resume_local("r-4", root)
    for run_id in ("r-2", "r-1"):
        assert (root / run_id / PIPELINE_DIR).is_dir() and "pruned" not in json.loads(
            (root / run_id / RUN_JSON).read_text()
        )
    # the history each kept run reads, and `optbench runs`, are what they were
    assert {r: earlier_runs(str(root), SUITE, r)[0] for r in ("r-1", "r-2")} == before
    assert [r["run_id"] for r in read_records(str(root), suite=SUITE)[0]] == ["r-4", "r-3", "r-2", "r-1"]
    assert "would delete 0.0 MB from 0 run(s)" in prune(root, "--keep", "2").output  # nothing left to prune
    listed = prune(root, "--keep", "1").output  # the pruned runs are as old as they were: r-1 is still the newest
    assert [line.split()[1] for line in listed.splitlines() if line.startswith(f"  {SUITE}")] == ["r-2"]


def test_a_run_being_written_is_left_alone(root):
    proc = hold(root / "r-4")
    try:
        result = prune(root, "--keep", "1", "--yes")
        assert result.exit_code == 0, result.output
        assert f"r-4: being written by pid {proc.pid}" in result.output
        assert (root / "r-4" / PIPELINE_DIR).is_dir() and not (root / "r-3" / PIPELINE_DIR).exists()
    finally:
        proc.kill()
        proc.wait()


def test_published_runs_are_pruned_alike_and_their_history_still_reads_them(made, tmp_path, gcs):
    """Under a gs:// prefix: the oldest runs of each suite lose their data, models, evaluation and TensorBoard
    copy, their markers stop naming them, and what a history, a trend or a download of the report reads stays."""
    client, bucket = gcs
    root = f"gs://{bucket.name}/team"
    for run_id in ("r-4", "r-3", "r-2", "r-1"):  # published oldest first
        run = fake_run(tmp_path, run_id=run_id)
        shutil.copytree(made / run_id / REPORT_DIR, run / REPORT_DIR, dirs_exist_ok=True)
        publish_run(run, root, SUITE)
    publish_run(fake_run(tmp_path / "other", run_id="o-1"), root, "other")  # a suite of one run: kept whole
    history = f"{root}/{SUITE}"
    before = {r: earlier_runs(history, SUITE, r)[0] for r in ("r-1", "r-2")}
    objects = {b.name: b.crc32c for b in bucket.list_blobs()}

    listed = prune(root, "--keep", "2")
    assert listed.exit_code == 0, listed.output
    shown = [line.split() for line in listed.output.splitlines() if line.startswith("  ")]
    assert [row[1] for row in shown] == ["r-4", "r-3"] and "--yes" in listed.output
    assert shown[0][2:6] == ["data/,", "eval/,", "models/,", f"{REPORT_DIR}/{TENSORBOARD_DIR}/"]
    assert {b.name: b.crc32c for b in bucket.list_blobs()} == objects, "the list deletes nothing"

    result = prune(root, "--keep", "2", "--yes")
    assert result.exit_code == 0, result.output
    bulk = ("data/", "eval/", "models/", f"{REPORT_DIR}/{TENSORBOARD_DIR}/")
    left = {b.name for b in bucket.list_blobs()}
    for run_id in ("r-4", "r-3"):
        run = GcsRun.open(f"{history}/{run_id}")
        assert run.files() and not [n for n in run.files() if n.startswith(bulk)]
        assert {n for n in left if n.startswith(f"team/{SUITE}/{run_id}/")} == {
            f"team/{SUITE}/{run_id}/{n}" for n in [*run.files(), MARKER]
        }, "the marker names every object left, and nothing else is left"
        assert json.loads(run.read_bytes(f"{REPORT_DIR}/comparison.json"))
        assert json.loads(bucket.blob(f"team/{SUITE}/{run_id}/{MARKER}").download_as_bytes())["pruned"]["deleted"]
    kept = {n: c for n, c in objects.items() if "/r-4/" not in n and "/r-3/" not in n}
    assert {b.name: b.crc32c for b in bucket.list_blobs() if b.name in kept} == kept
    assert megabytes(result.output, "freed") == megabytes(listed.output, "would delete") > 0
    assert {r: earlier_runs(history, SUITE, r)[0] for r in ("r-1", "r-2")} == before
    assert "would delete 0.0 MB from 0 run(s)" in prune(root, "--keep", "2").output


def megabytes(output: str, after: str) -> float:
    """The MB figure the prune printed after `after` ("would delete", "freed")."""
    return float(output.split(f"{after} ")[1].split()[0].replace(",", ""))


@pytest.mark.parametrize(
    "args, message",
    [
        (("--keep", "0"), "--keep must be at least 1"),
        (("--keep", "-3"), "--keep must be at least 1"),
    ],
)
def test_wrong_values_are_refused_in_one_line(root, args, message):
    result = prune(root, *args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert "no such folder of runs" in prune(root / "missing").output
    assert prune("gs://Bad Bucket/x").output.strip() == "Error: not a gs://BUCKET[/PREFIX] URI: 'gs://Bad Bucket/x'"
