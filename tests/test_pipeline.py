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
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("optimizers")
    assert set(loop["dependentTasks"]) == {"ingest", "init-model"}
    assert set(tasks["evaluate"]["dependentTasks"]) == {"ingest", next(n for n in tasks if n.startswith("for-loop"))}
    assert set(tasks["report"]["dependentTasks"]) >= {"evaluate"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"optimizers", "epochs", "batch_size", "data_source", "seed", "train_limit"} <= set(params)
    assert params["epochs"]["defaultValue"] == 10 and params["batch_size"]["defaultValue"] == 64
