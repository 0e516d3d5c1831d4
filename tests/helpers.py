"""Helpers several test modules use."""

from __future__ import annotations

from typing import Any

from optbench.components.question import suites


def single_trial(optimizer: str, seed: int = 0, batch_size: int = 64, **params: Any) -> dict:
    """One trial outside any suite, expanded as a suite of one would be: the optimizer's defaults plus `params`."""
    suite = suites.validate(
        {
            "optimizers": [{"name": optimizer, **params}],
            "batch_size": batch_size or "full",
            "seeds": [seed],
            "baseline": None,
        },
        source="trial",
    )
    (trial,) = suites.expand(suite)
    return trial


# Beam's multi-process in-process runner: workers are separate processes that share no memory with the driver,
# as a distributed runner's (Dataflow's) do.
MULTI_PROCESS_BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def bucket_files(bucket, prefix: str) -> dict[str, bytes]:
    """name under `prefix` -> content, of every object there."""
    return {b.name[len(prefix) :]: b.download_as_bytes() for b in bucket.list_blobs(prefix=prefix)}


def tensorboard_scalars(log_dir, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one scalar in a folder of event files, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0}).Reload()
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
