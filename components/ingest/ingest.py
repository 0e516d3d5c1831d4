"""The ingest step: validated MNIST -> sharded TFRecords + stats, with Apache Beam.

The driver resolves and validates the source first (so bad data stops the run
before Beam or any training starts), then a Beam pipeline reads the IDX files
in chunks, encodes tf.Examples, assigns splits and writes the shards.

The output is a path or the artifact's gs:// URI (`uris`):
with a remote output the validated source is staged beside it first, so a
distributed runner's workers (Dataflow) read nothing from this machine.

Shards are written by our own DoFn after a GroupByKey on (split, shard) with
records sorted by their source index: Beam's file sinks place records in
shards in no fixed order, and a reproducible comparison needs the same bytes
on every run.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from optbench.components.ingest import idx, sources
from optbench.components.shared import datasets, uris
from optbench.components.shared.beam import pipeline_options
from optbench.components.shared.schema import NUM_CLASSES, SPLITS, STATS_FILE, shard_path
from optbench.components.shared.timing import timed

log = logging.getLogger(__name__)

CHUNK = 2000  # source records per Beam element
# The split is the same in every run (and for every seed of a run): every optimizer, and every run of a
# schedule, sees the same training, validation and test examples.
SPLIT_SEED = 0
RECORDS_PER_SHARD = 16384
STAGED_SOURCE_DIR = ".source"  # a remote output's copy of the validated source, which the workers read

# Split codes in the assignment arrays.
DROP_CODE, TRAIN_CODE, VALIDATION_CODE, TEST_CODE = 0, 1, 2, 3
_SPLIT_OF_CODE = {TRAIN_CODE: "train", VALIDATION_CODE: "validation", TEST_CODE: "test"}


def assign_train(n: int, validation_fraction: float, train_limit: int | None) -> np.ndarray:
    """Deterministic split of the source's training records into train / validation / dropped.

    A seeded permutation picks which records are used (`train_limit` caps
    train + validation together) and which of them form the validation split.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    used = order[: min(n, train_limit)] if train_limit else order
    n_val = max(1, round(len(used) * validation_fraction))
    if len(used) - n_val < 1:
        raise ValueError(f"train_limit {train_limit} leaves no training examples after the validation split")
    codes = np.full(n, DROP_CODE, np.uint8)
    codes[used[n_val:]] = TRAIN_CODE
    codes[used[:n_val]] = VALIDATION_CODE
    return codes


def assign_test(n: int, test_limit: int | None) -> np.ndarray:
    codes = np.full(n, DROP_CODE, np.uint8)
    keep = np.random.default_rng(SPLIT_SEED + 1).permutation(n)[:test_limit] if test_limit else np.arange(n)
    codes[keep] = TEST_CODE
    return codes


def shard_count(n: int) -> int:
    return max(1, math.ceil(n / RECORDS_PER_SHARD))


def _arrays(folder: str, source_split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's decoded arrays, read once per process for as long as its files are unchanged.

    A remote `folder` (the source staged beside the output, for a distributed runner's workers) is
    copied to local disk once per process.
    """
    if uris.is_remote(folder):
        return _read_split(folder, source_split, ())
    files = [Path(folder, name) for name in idx.SPLIT_FILES[source_split]]
    return _read_split(folder, source_split, tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=4)
def _read_split(folder: str, source_split: str, _signature: tuple) -> tuple[np.ndarray, np.ndarray]:
    if not uris.is_remote(folder):
        return idx.read_split(folder, source_split)
    with tempfile.TemporaryDirectory() as local:
        for name in idx.SPLIT_FILES[source_split]:
            uris.fetch(uris.join(folder, name), local)
        return idx.read_split(local, source_split)


def _stage_source(folder: str, out: str) -> str:
    """Where the workers read the source: `folder` itself for a local output, else a copy beside the output."""
    if not uris.is_remote(out):
        return folder
    staged = uris.join(out, STAGED_SOURCE_DIR)
    for name in (n for names in idx.SPLIT_FILES.values() for n in names):
        uris.write_bytes(uris.join(staged, name), Path(folder, name).read_bytes())
    return staged


def _read_chunk(element: tuple, codes: dict[str, np.ndarray], shards: dict[str, int]):
    """(source_split, folder, start, stop) -> ((split, shard), (index, label, serialized example))."""
    from optbench.components.ingest.examples import to_example_bytes

    source_split, folder, start, stop = element
    images, labels = _arrays(folder, source_split)
    split_codes = codes[source_split]
    for i in range(start, stop):
        code = int(split_codes[i])
        if code == DROP_CODE:
            continue
        split = _SPLIT_OF_CODE[code]
        yield (split, i % shards[split]), (i, int(labels[i]), to_example_bytes(images[i], labels[i]))


def _write_shard(keyed: tuple, output_dir: str, shards: dict[str, int]) -> dict:
    """Write one shard, records sorted by source index, through a temporary name; return its class counts."""
    from optbench.components.shared.records import write_tfrecords

    (split, shard), records = keyed
    records = sorted(records, key=lambda r: r[0])
    local = None if uris.is_remote(output_dir) else f"{output_dir}/{split}"  # beside the shard: an atomic rename
    fd, tmp = tempfile.mkstemp(prefix=f".part-{shard:05d}.", suffix=".tfrecord", dir=local)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; the shards are read by every later step, whoever runs it
    write_tfrecords(tmp, (example for _, _, example in records))  # a local file; uris moves it
    uris.put(tmp, shard_path(output_dir, split, shard, shards[split]))
    return {"split": split, "per_class": dict(Counter(label for _, label, _ in records))}


def validate_source(source: str, cache_dir: str | None = None, dataset: str | None = None) -> sources.ResolvedSource:
    """Resolve `source`, run every check on its four files, and say which dataset they hold.

    Raises DataError naming the file and the check. Content that is no known
    dataset is accepted, fingerprinted and named unknown, unless `dataset`
    names what it must be: then a split whose content is known and differs
    is an error.
    """
    named = datasets.known(dataset) if dataset else None
    resolved = sources.resolve(source, cache_dir, dataset)
    fingerprints = {split: datasets.fingerprint(*_arrays(resolved.folder, split)) for split in datasets.SPLITS}
    found = datasets.identify(fingerprints, resolved.folder)
    splits = {split: {"fingerprint": fingerprints[split], "dataset": found[split]} for split in datasets.SPLITS}
    overall = resolved.sample_of or (found["train"] if len(set(found.values())) == 1 else datasets.UNKNOWN)
    if named and overall != named.name:
        for split in datasets.SPLITS:
            expected = named.fingerprints.get(split)
            if found[split] != named.name and (expected or found[split] != datasets.UNKNOWN):
                raise idx.DataError(
                    f"{resolved.folder}: dataset check failed: its {split} split is not {named.title}'s "
                    f"(content fingerprint {fingerprints[split][:12]}"
                    + (f", {named.title}'s is {expected[:12]})" if expected else f", which is {found[split]}'s)")
                )
        unchecked = [split for split in datasets.SPLITS if found[split] != named.name]
        log.warning(
            "%s: taken as %s as asked; its %s split cannot be checked here (only its published files are known)",
            resolved.folder,
            named.title,
            " and ".join(unchecked),
        )
        overall = named.name
    return replace(resolved, splits=splits, dataset=overall)


def training_count(resolved: sources.ResolvedSource) -> int:
    """How many examples the source's training split holds (before the validation split and any limit)."""
    return len(_arrays(resolved.folder, "train")[1])


def describe(resolved: sources.ResolvedSource) -> str:
    """One line for the log and the report: the dataset, or the unknown content's fingerprints."""
    if resolved.dataset != datasets.UNKNOWN:
        return f"{datasets.known(resolved.dataset).title} ({resolved.note})"
    parts = [
        f"{split} {s['fingerprint'][:12]}"
        + (f" = {datasets.known(s['dataset']).title}'s" if s["dataset"] != datasets.UNKNOWN else "")
        for split, s in resolved.splits.items()
    ]
    return f"an unknown dataset ({resolved.note}; content fingerprints: {', '.join(parts)})"


@timed("ingest")
def run_ingest(
    source: str,
    output_dir: str,
    *,
    validation_fraction: float = 0.1,
    train_limit: int | None = None,
    test_limit: int | None = None,
    cache_dir: str | None = None,
    beam_args: list[str] | None = None,
    dataset: str | None = None,
) -> dict:
    """Resolve, validate and convert `source`; write `output_dir/{train,validation,test}/` and stats.json."""
    import apache_beam as beam

    for name, limit in (("train_limit", train_limit), ("test_limit", test_limit)):
        if limit is not None and limit < 2:
            raise ValueError(f"{name} must be at least 2, got {limit}")
    # Validate everything in the driver: a bad file stops here, naming the file and the check.
    resolved = validate_source(source, cache_dir, dataset)
    log.info("ingest: %s", describe(resolved))
    n = {split: len(_arrays(resolved.folder, split)[1]) for split in ("train", "test")}
    codes = {
        "train": assign_train(n["train"], validation_fraction, train_limit),
        "test": assign_test(n["test"], test_limit),
    }
    expected = {s: int(sum((c == code).sum() for c in codes.values())) for code, s in _SPLIT_OF_CODE.items()}
    shards = {s: shard_count(count) for s, count in expected.items()}
    out = output_dir if uris.is_remote(output_dir) else os.path.abspath(output_dir)
    if not uris.is_remote(out):
        for split in SPLITS:
            Path(out, split).mkdir(parents=True, exist_ok=True)
    source = _stage_source(resolved.folder, out)
    chunks = [
        (split, source, start, min(start + CHUNK, n[split]))
        for split in ("train", "test")
        for start in range(0, n[split], CHUNK)
    ]
    counts_path = uris.join(out, ".shard-counts")
    with beam.Pipeline(options=pipeline_options(beam_args)) as p:
        _ = (
            p
            | "Chunks" >> beam.Create(chunks)
            | "ReadAndEncode" >> beam.FlatMap(_read_chunk, codes=codes, shards=shards)
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(_write_shard, output_dir=out, shards=shards)
            | "ToJson" >> beam.Map(json.dumps)
            | "WriteCounts" >> beam.io.WriteToText(counts_path, num_shards=1, shard_name_template="")
        )

    per_class: dict[str, Counter[int]] = {s: Counter() for s in SPLITS}
    for line in uris.read_bytes(counts_path).decode().splitlines():
        shard = json.loads(line)
        per_class[shard["split"]].update({int(k): v for k, v in shard["per_class"].items()})
    uris.remove([counts_path, *uris.match(uris.join(out, STAGED_SOURCE_DIR, "*"))])
    stats_splits = {}
    for split in SPLITS:
        count = sum(per_class[split].values())
        if count != expected[split]:
            raise RuntimeError(f"ingest wrote {count} {split} records, expected {expected[split]}")
        if count == 0:
            raise idx.DataError(f"{resolved.folder}: count check failed: the {split} split is empty")
        stats_splits[split] = {
            "count": count,
            "per_class": {str(c): per_class[split].get(c, 0) for c in range(NUM_CLASSES)},
        }
    dataset_info = datasets.KNOWN.get(resolved.dataset)
    stats = {
        "source": {**resolved.as_dict(), "description": describe(resolved)},
        "dataset": {
            "name": resolved.dataset,
            "title": dataset_info.title if dataset_info else "an unknown dataset",
            "class_names": list(dataset_info.class_names if dataset_info else map(str, range(NUM_CLASSES))),
        },
        "splits": stats_splits,
        "validation_fraction": validation_fraction,
        "train_limit": train_limit,
        "test_limit": test_limit,
    }
    uris.write_json(uris.join(out, STATS_FILE), stats)
    log.info("ingest: wrote %s", ", ".join(f"{s} {v['count']}" for s, v in stats_splits.items()))
    return stats
