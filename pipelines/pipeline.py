"""The optimizer comparison as one KFP pipeline:

    ingest ─┐
            ├─> ParallelFor(optimizers: train) ─> evaluate (fan-in) ─> report
    init ───┘

The same definition runs locally (`kfp.local`, `optbench run`) and compiles
to the IR YAML a Kubeflow cluster runs.
"""

from typing import List

from kfp import dsl

from pipelines import components as c

PIPELINE_NAME = "optbench-compare"


@dsl.pipeline(name=PIPELINE_NAME, description="Which optimizer should I train this network with?")
def compare_optimizers(
    optimizers: List[str],
    model_name: str = "cnn",
    data_source: str = "auto",
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    validation_fraction: float = 0.1,
    train_limit: int = 0,
    test_limit: int = 0,
    baseline: str = "sgd",
    train_threads: int = 0,
    beam_args: List[str] = [],
    settings_json: str = "{}",
) -> dsl.Artifact:
    ingest = c.ingest(data_source=data_source, validation_fraction=validation_fraction, train_limit=train_limit,
                      test_limit=test_limit, seed=seed, beam_args=beam_args).set_display_name("ingest (Beam)")
    init = c.init_model(model_name=model_name, seed=seed).set_display_name("initial weights")
    with dsl.ParallelFor(optimizers) as optimizer:
        train = c.train(dataset=ingest.outputs["dataset"], initial=init.outputs["initial"], optimizer=optimizer,
                        epochs=epochs, batch_size=batch_size, seed=seed, threads=train_threads)
        train.set_display_name("train (Keras)")
    # One Collected per consumer: KFP 2.17 fails to compile a Collected object shared by two tasks.
    evaluation = c.evaluate(dataset=ingest.outputs["dataset"], models=dsl.Collected(train.outputs["model"]),
                            baseline=baseline,
                            beam_args=beam_args).set_display_name("evaluate (TFMA)")
    report = c.report(dataset=ingest.outputs["dataset"], models=dsl.Collected(train.outputs["model"]),
                      evaluation=evaluation.outputs["evaluation"], settings_json=settings_json)
    report.set_display_name("report")
    return report.outputs["report_dir"]
