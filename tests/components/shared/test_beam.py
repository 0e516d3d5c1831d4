"""The Beam steps' runner: FnApiRunner unless the arguments name another."""

from __future__ import annotations

from optbench.components.shared.beam import pipeline_args


def test_beam_runner_defaults_to_fnapi_unless_given():
    assert pipeline_args(None) == ["--runner=FnApiRunner"]
    assert pipeline_args(["--direct_num_workers=2"]) == ["--runner=FnApiRunner", "--direct_num_workers=2"]
    dataflow = ["--runner", "DataflowRunner", "--project=p", "--region=europe-west1"]
    assert pipeline_args(dataflow) == dataflow
