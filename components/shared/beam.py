"""Beam pipeline options shared by the Beam steps (ingest, evaluate)."""

from __future__ import annotations

# In-process runner. Beam 2.77's default runner would first download a Prism binary.
DEFAULT_BEAM_ARGS = ("--runner=FnApiRunner",)


def pipeline_args(beam_args: list[str] | None) -> list[str]:
    """`beam_args` (e.g. a Dataflow runner and its options), with the FnApiRunner added when they name no runner."""
    args = list(beam_args or [])
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args = [*DEFAULT_BEAM_ARGS, *args]
    return args


def pipeline_options(beam_args: list[str] | None):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(pipeline_args(beam_args))
