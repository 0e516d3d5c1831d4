"""The benchmark: its own arithmetic (the timing lines the steps print, the split of a run's wall time), and `make
bench` at its smoke size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optbench.bench.notebook import BETWEEN, STARTING, split_timeline
from optbench.components.shared.timing import MARKER, counting_imports, timed


def test_split_gives_each_instant_to_the_working_steps_then_start_up_then_kfp():
    # 0-1 nothing; 1-3 ingest starts (process at 1, step at 2, imports 1 s); 3-5 ingest works;
    # 5-6 two trains start; 6-8 both work (shared); 8-9 one works; 9-10 nothing.
    markers = [
        {"step": "ingest", "process": 1, "start": 2, "imports": 1, "end": 5},
        {"step": "train", "process": 5, "start": 5.5, "imports": 0.5, "end": 8},
        {"step": "train", "process": 5, "start": 5.5, "imports": 0.5, "end": 9},
    ]
    split = split_timeline(markers, 0, 10)
    assert split == pytest.approx({BETWEEN: 2, STARTING: 3, "ingest": 2, "train": 3}, abs=0.02)
    assert sum(split.values()) == pytest.approx(10)


def test_a_timed_step_prints_when_its_process_and_work_began_and_its_imports(capsys):
    @timed("probe")
    def step(x):
        import xml.dom.minidom  # noqa: F401  (a module this test process has not imported yet)

        return x + 1

    sys.modules.pop("xml.dom.minidom", None)
    assert step(1) == 2
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(MARKER)]
    marker = json.loads(line.removeprefix(MARKER))
    assert marker["step"] == "probe"
    assert marker["process"] <= marker["start"] <= marker["end"]
    assert 0 < marker["imports"] <= marker["end"] - marker["start"]


def test_imports_are_counted_once_however_deep_and_only_inside_the_block():
    sys.modules.pop("json.tool", None)
    with counting_imports() as spent:
        import json.tool  # noqa: F401  (imports argparse and more: nested imports are not counted twice)
    outside = spent[0]
    import csv  # noqa: F401

    assert 0 < outside == spent[0]


@pytest.mark.e2e
def test_the_smoke_size_runs_every_stage_and_writes_complete_results(tmp_path):
    """`make bench` at its smoke size: every stage on a few hundred examples, so that none breaks unseen."""
    from optbench.bench.run import SIZES

    result = subprocess.run(
        [sys.executable, "-m", "optbench.bench.run", "--size", "smoke", "--data-source", "npm", "--output", tmp_path],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["complete"] and results["size"] == "smoke"
    stages = results["stages"]
    assert set(stages) == {"notebook", "ingest", "training", "steps", "evaluation", "orchestration", "fan_out"}
    notebook = stages["notebook"]
    assert notebook["ratio"] == pytest.approx(
        notebook["pipeline"]["wall_seconds"] / notebook["notebook"]["wall_seconds"]
    ), "one run each: the medians are those runs"
    assert notebook["repetitions"] == SIZES["smoke"].notebook_repetitions == len(notebook["wall_seconds"]["pipeline"])
    assert notebook["notebook"]["examples"]["test"] == SIZES["smoke"].notebook["test_limit"]
    assert set(notebook["notebook"]["test_accuracy"]) == {"adam.s0", "sgd.s0"}
    steps = stages["steps"]
    assert {"ingest", "init_model", "step_cost", "evaluate", "report"} <= set(steps) and steps["epochs"] == 1
    assert all(stages["training"][m]["ratio"] > 0 for m in ("mlp", "cnn"))
    assert stages["fan_out"]["speedup"] > 0 and stages["orchestration"]["ratio"] > 0
    assert f"ratio {notebook['ratio']:.2f}" in result.stdout, "the table"
