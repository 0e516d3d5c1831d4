"""Ingest throughput: the Beam pipeline against reading the same IDX files with numpy alone.

The baseline only decodes the files; Beam also validates, encodes tf.Examples,
splits and writes shards, so the ratio (below 1) is the price of those extras
per image, measured on the same machine in the same run.
"""

from __future__ import annotations

import tempfile
import time

from optbench.components.ingest import idx
from optbench.components.ingest.ingest import run_ingest, validate_source


def bench_ingest(source: str, train_limit: int | None = None) -> dict:
    folder = validate_source(source).folder  # download or convert once, outside the timing
    started = time.perf_counter()
    arrays = [idx.read_split(folder, split) for split in ("train", "test")]
    numpy_seconds = time.perf_counter() - started
    images = sum(len(labels) for _, labels in arrays)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        stats = run_ingest(source, out, train_limit=train_limit)
        beam_seconds = time.perf_counter() - started
    written = sum(s["count"] for s in stats["splits"].values())
    return {
        "images": written,
        "beam_seconds": beam_seconds,
        "numpy_seconds": numpy_seconds,
        "beam_images_per_second": written / beam_seconds,
        "numpy_images_per_second": images / numpy_seconds,
        "ratio": (written / beam_seconds) / (images / numpy_seconds),
    }
