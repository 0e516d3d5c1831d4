"""The train step as a KFP component: a thin wrapper around components/train/train.py."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from optbench.components.image import component


@component
def train(
    dataset: Input[Dataset],
    initial: Input[Model],
    trial_json: str,
    epochs: int,
    early_stopping_json: str,
    threads: int,
    mixed_precision: bool,
    xla: bool,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Keras: train one trial (optimizer variant x seed) from its seed's initial weights."""
    import json

    from optbench.components.shared.artifacts import persist_metadata
    from optbench.components.train.early_stopping import board_of
    from optbench.components.train.train import kfp_metrics, run_train

    history = run_train(
        dataset.path,
        initial.path,
        model.path,
        json.loads(trial_json),
        epochs=epochs,
        early_stopping=json.loads(early_stopping_json) or None,
        board=board_of(initial.uri),
        threads=threads or None,
        mixed_precision=mixed_precision,
        xla=xla,
    )
    model.metadata.update({k: history[k] for k in ("trial", "variant", "optimizer", "seed", "status")})
    for key, value in kfp_metrics(history).items():
        metrics.log_metric(key, value)
    persist_metadata(metrics)
