"""The ingest step as a KFP component: a thin wrapper around `run_ingest`, beside it."""

from typing import List

from kfp.dsl import Dataset, Output

from optbench.components.image import component


@component
def ingest(
    data_source: str,
    dataset_name: str,
    validation_fraction: float,
    train_limit: int,
    test_limit: int,
    beam_args: List[str],
    dataset: Output[Dataset],
):
    """Apache Beam: resolve and validate the data, name its dataset, write sharded TFRecords and stats."""
    from optbench.components.ingest.ingest import run_ingest

    stats = run_ingest(  # the URI: where a distributed runner's workers can write (gs:// on a cluster)
        data_source,
        dataset.uri,
        validation_fraction=validation_fraction,
        train_limit=train_limit or None,
        test_limit=test_limit or None,
        beam_args=beam_args,
        dataset=dataset_name or None,
    )
    dataset.metadata.update({split: s["count"] for split, s in stats["splits"].items()})
