"""The pipeline definition compiles to the KFP IR a cluster runs, with the intended DAG."""
from __future__ import annotations

import yaml
from kfp import compiler

from pipelines.pipeline import PIPELINE_NAME, compare_optimizers


def test_compiles_to_the_ingest_train_evaluate_report_dag(tmp_path):
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(compare_optimizers, str(path))
    spec = yaml.safe_load(path.read_text())
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    loop = next(t for name, t in tasks.items() if name.startswith("for-loop"))
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("trials")
    assert set(loop["dependentTasks"]) == {"ingest", "init-model"}
    assert set(tasks["evaluate"]["dependentTasks"]) == {"ingest", loop["taskInfo"]["name"]}
    assert set(tasks["report"]["dependentTasks"]) >= {"evaluate"}
    metrics_loop = next(t for name, t in tasks.items() if name.startswith("for-loop") and t is not loop)
    assert metrics_loop["dependentTasks"] == ["evaluate"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"trials", "seeds", "epochs", "data_source", "train_limit", "baseline_trial", "mixed_precision"} <= set(params)
    assert params["epochs"]["defaultValue"] == 10


def test_configure_is_called_on_every_step():
    from pipelines.pipeline import build_pipeline

    seen = []
    build_pipeline(lambda task, step: seen.append(step))
    assert sorted(seen) == ["evaluate", "ingest", "init", "metrics", "report", "train"]
