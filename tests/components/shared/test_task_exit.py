"""A task process whose step succeeded skips the libraries' shutdown; a failure keeps Python's exit and status."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TASK = """
import atexit, logging, sys, time
from optbench.components.shared import task_exit

task_exit.EXECUTOR = __spec__.name  # this module plays the KFP executor
atexit.register(lambda: print("the libraries' slow shutdown ran", flush=True))  # registered first, as an import does
logging.basicConfig(stream=sys.stdout, level=logging.INFO)
task_exit.exit_when_done()
logging.info("the step's last log line")
print("outputs written")
if sys.argv[1:] == ["fail"]:
    raise RuntimeError("the executor failed after the step")
"""


def run_task(tmp_path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "fake_executor.py").write_text(textwrap.dedent(TASK))
    return subprocess.run(
        [sys.executable, "-m", "fake_executor", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_a_task_that_succeeded_ends_without_the_libraries_shutdown_and_loses_no_output(tmp_path):
    done = run_task(tmp_path)
    assert done.returncode == 0
    assert "the step's last log line" in done.stdout and "outputs written" in done.stdout
    assert "slow shutdown ran" not in done.stdout


def test_a_task_that_fails_after_its_step_keeps_its_failure_and_its_shutdown(tmp_path):
    done = run_task(tmp_path, "fail")
    assert done.returncode == 1 and "RuntimeError: the executor failed after the step" in done.stderr
    assert "slow shutdown ran" in done.stdout


def test_outside_a_task_process_nothing_changes(tmp_path):
    script = "from optbench.components.shared import task_exit; task_exit.exit_when_done(); raise SystemExit(3)"
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 3
