"""Every run knows its history: the record a run leaves for the later runs of its suite, and reading them back.

The report step writes record.json into its folder: what a later run needs to say
what changed, nothing else. That is the run's settings, its comparison rows
reduced to the scalar columns and per-seed figures, the verdict and the winner, each variant's hyperparameters
and step-cost measurement, a fingerprint of the test set, and for every scored trial which test examples it got
right, as packed bits (10,000 examples are 1.7 KB a trial): with those a later run on the same test set runs the
verdict's paired tests against this one, no models and no probabilities needed.

Earlier runs are read at `<root>/<run_id>/report/record.json`. `root` is a folder of runs (`optbench run`'s
--output, into which the local runner publishes each finished run's report folder) or a gs:// prefix, where a
cluster run's report step writes its record once its report is complete (`publish_record`). Both are read
through Beam's file systems.

Whoever can write under the root can put a file there, so each record is read as untrusted input: at most
MAX_RECORD_BYTES, checked against the schema, names plain. A record that fails, the record of another suite, a
local run that failed or is still running (it has no report), and this run's own record from an earlier attempt
are skipped with a one-line note, never mixed in. Runs are ordered by the time they finished, not by id: a
cluster's run ids are UUIDs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from optbench.components.results.row import NON_FINITE, SCALAR_COLUMNS
from optbench.components.results.significance import scored_trials
from optbench.components.shared import uris
from optbench.components.shared.predictions import Predictions
from optbench.components.shared.schema import RECORD_JSON, REPORT_DIR, RUN_JSON, TEST_SPLIT
from optbench.components.shared.untrusted import UntrustedInput, plain_name, printable

SCHEMA = 1
MAX_RUNS = 20  # earlier runs of a suite compared: the newest, by the time their record was written
MAX_READ = 200  # records and run folders looked at, whatever their suite: reading a crowded root stays bounded
MAX_RECORD_BYTES = 4 << 20  # a suite of 75 trials over 5 seeds writes about 0.7 MB
MAX_TEXT = 4000  # a verdict; any other text in a record is shorter
STATUS_SETTINGS = ("mlflow", "notify")  # how this run's exports went: no setting of the suite
PER_SEED = ("seed", "trial", "diverged", "stopped", "test_accuracy", "train_seconds", "steps")
# The row columns changes.py and the trend read, by type; any other scalar column is checked to be a scalar.
NUMBERS = (
    "seeds_ok",
    "seeds_total",
    "learning_rate",
    "step_seconds",
    "cost_seconds",
    "cost_seconds_std",
    "train_seconds",
    "train_seconds_std",
    "test_accuracy",
    "test_accuracy_std",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_loss",
)
FLAGS = ("best", "winner")
STEP_COST = ("seconds_per_step", "q1", "q3", "rounds")
STATUSES = ("ok", "partial", *NON_FINITE, "stopped")


@dataclass(frozen=True)
class History:
    """What the report compares this run with: the root read, the earlier records (oldest first), and the notes
    on what was skipped there."""

    root: str
    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def make_record(
    settings: dict,
    rows: list[dict],
    verdict: str,
    histories: list[dict],
    step_cost: dict | None,
    predictions: Predictions | None,
    stats: dict | None,
) -> dict:
    """The run's record (docs/artifacts.md), without its `changes`, which the caller adds once they are known.

    `rows` are the ranked comparison rows after the significance tests (they carry `best` and `winner`).
    """
    best = next((r for r in rows if r["best"]), None)
    lowest_seed: dict[str, dict] = {}  # per variant, the history of its lowest seed: the last one written here
    for h in sorted(histories, key=lambda h: h.get("seed") or 0, reverse=True):
        lowest_seed[h["variant"]] = h
    measured = (step_cost or {}).get("variants") or {}
    return {
        "schema": SCHEMA,
        "run_id": settings.get("run_id"),
        "suite": settings.get("suite"),
        "finished_at": datetime.now(UTC).isoformat(),
        "settings": {k: v for k, v in settings.items() if k not in STATUS_SETTINGS},
        "devices": sorted({h.get("device_name") or h.get("device") or "" for h in histories} - {""}),
        "verdict": verdict,
        "winner": {"optimizer": best and best["optimizer"], "significant": bool(best and best["winner"])},
        "rows": [
            {key: r[key] for key in SCALAR_COLUMNS}
            | {"per_seed": [{key: s[key] for key in PER_SEED} for s in r["per_seed"]]}
            for r in rows
        ],
        "variants": {
            r["optimizer"]: {
                "hyperparameters": _hyperparameters(lowest_seed[r["optimizer"]]),
                "step_cost": {k: v for k, v in measured[r["optimizer"]].items() if k in STEP_COST}
                if r["optimizer"] in measured
                else None,
            }
            for r in rows
        },
        "test_set": _test_set(predictions, stats) if predictions is not None else None,
        "correct": {}
        if predictions is None
        else {
            s["trial"]: base64.b64encode(np.packbits(predictions.correct(s["trial"])).tobytes()).decode("ascii")
            for r in rows
            for s in scored_trials(r, predictions)
        },
        "changes": None,
    }


def _hyperparameters(history: dict) -> dict[str, Any]:
    """What the variant trained with, flat: the optimizer's full Keras config, its learning rate and batch size."""
    config = _flat(history.get("optimizer_config") or {})
    found = {
        **config,
        "optimizer": history.get("optimizer"),
        **{k: history.get(k) for k in ("learning_rate", "batch_size")},
    }
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in found.items()}


def _flat(value: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Nested mappings as dotted keys, `depth` levels at most (deeper ones, and lists, as compact JSON text)."""
    if isinstance(value, dict) and value and depth:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k), depth - 1))
        return out
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    return {prefix: value}


def flat_settings(record: dict) -> dict[str, Any]:
    """A record's settings as dotted keys (versions.tensorflow, thresholds.min_accuracy, ...), with its devices:
    what changes.py compares between two runs."""
    settings = {k: v for k, v in record["settings"].items() if k != "run_id"}
    return {**_flat(settings), "devices": ", ".join(record["devices"])}


def _test_set(predictions: Predictions, stats: dict | None) -> dict:
    """Which test examples, in which order: the same fingerprint means a paired test against that run is valid."""
    labels = np.ascontiguousarray(predictions.labels, dtype="<i8")
    source = (((stats or {}).get("source") or {}).get("splits") or {}).get(TEST_SPLIT) or {}
    return {
        "examples": int(labels.size),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "source_fingerprint": source.get("fingerprint"),
    }


def correct_by_seed(record: dict, row: dict) -> dict[int, np.ndarray]:
    """seed -> bool [N]: which test examples the row's scored trials got right, as the record keeps them."""
    n = record["test_set"]["examples"]
    return {
        s["seed"]: np.unpackbits(
            np.frombuffer(base64.b64decode(record["correct"][s["trial"]]), np.uint8), count=n
        ).astype(bool)
        for s in row["per_seed"]
        if s["trial"] in record["correct"]
    }


def finished(record: dict) -> datetime:
    return datetime.fromisoformat(record["finished_at"])


# --- reading ---


@dataclass(frozen=True)
class _Candidate:
    """A run folder under the root: its record (None: a local run folder without one) and its run.json."""

    name: str
    record: str | None
    run_json: str | None
    updated: float


def earlier_runs(root: str, suite: str, run_id: str) -> tuple[list[dict], list[str]]:
    """The records of `suite`'s earlier runs under `root`, oldest first, at most MAX_RUNS (the newest), and one
    note per run skipped (an aggregated one for other suites' runs). `run_id` (this run) is never one of them."""
    return read_records(root, suite=suite, exclude=run_id)


def read_records(
    root: str, suite: str | None = None, exclude: str = "", limit: int = MAX_RUNS
) -> tuple[list[dict], list[str]]:
    """The valid records under `root` (of `suite`, or of every suite), oldest first, at most `limit` of each suite
    (the newest), and notes on what was skipped. Raises ValueError when the root cannot be listed."""
    try:
        candidates = _candidates(root)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot list the runs under {root}: {_line(e)}") from None
    accepted: list[dict] = []
    per_suite: dict[str, int] = {}
    notes: list[str] = []
    other_suites = read = 0
    for at, found in enumerate(candidates):
        if read == MAX_READ or (suite is not None and per_suite.get(suite, 0) == limit):
            notes.append(
                f"{len(candidates) - at} older run folder(s) under {root} not read: at most {limit} earlier runs "
                f"of a suite are compared, {MAX_READ} folders looked at"
            )
            break
        read += 1
        if not _plain(found.name):
            notes.append(f"{printable(repr(found.name))[:140]}: not a run id: skipped")
            continue
        if found.name == exclude:
            if found.record:
                notes.append(f"run {found.name}: this run's own record, from an earlier attempt: not compared")
            continue
        if found.record is None:
            status, its_suite = _run_status(found.run_json)
            if suite is not None and its_suite not in (None, suite):
                other_suites += 1
            else:
                notes.append(f"run {found.name}: {_no_record(status)}: skipped")
            continue
        try:
            record = check_record(json.loads(uris.read_limited(found.record, MAX_RECORD_BYTES, RECORD_JSON)))
            if record["run_id"] != found.name:
                raise UntrustedInput(f"it names run {record['run_id']}, not its folder's")
        except Exception as e:  # noqa: BLE001 - whatever is wrong with one record (storage, JSON, schema), it is skipped
            notes.append(f"run {found.name}: {RECORD_JSON} not used ({_line(e)}): skipped")
            continue
        if suite is not None and record["suite"] != suite:
            other_suites += 1
        elif per_suite.get(record["suite"], 0) < limit:
            per_suite[record["suite"]] = per_suite.get(record["suite"], 0) + 1
            accepted.append(record)
    if other_suites:
        notes.append(f"{other_suites} run(s) of other suites under {root}: skipped")
    return sorted(accepted, key=finished), notes


def _candidates(root: str) -> list[_Candidate]:
    """The run folders under `root`, newest first: each with its record, and locally its run.json."""
    if uris.is_remote(root):
        found = [
            _Candidate(f.path.rsplit("/", 3)[-3], f.path, None, f.updated)
            for f in uris.match_stat(uris.join(root, "*", REPORT_DIR, RECORD_JSON))
        ]
    else:
        if not Path(root).is_dir():
            if Path(root).exists():
                raise ValueError("not a folder")
            return []
        found = []
        for run in Path(root).iterdir():
            record, run_json = run / REPORT_DIR / RECORD_JSON, run / RUN_JSON
            if record.is_file() or run_json.is_file():
                newest = record if record.is_file() else run_json
                found.append(
                    _Candidate(
                        run.name,
                        str(record) if record.is_file() else None,
                        str(run_json) if run_json.is_file() else None,
                        newest.stat().st_mtime,
                    )
                )
    return sorted(found, key=lambda c: (c.updated, c.name), reverse=True)


def _plain(name: str) -> bool:
    try:
        plain_name(name, "run id")
    except UntrustedInput:
        return False
    return True


def _run_status(run_json: str | None) -> tuple[str | None, str | None]:
    """(status, suite) of a local run folder, as its run.json says; None for what it does not say plainly."""
    try:
        meta = json.loads(uris.read_limited(run_json, MAX_RECORD_BYTES, RUN_JSON)) if run_json else {}
    except (OSError, ValueError):
        return None, None
    meta = meta if isinstance(meta, dict) else {}
    status = meta.get("status") if meta.get("status") in ("running", "failed", "succeeded") else None
    its_suite = (meta.get("suite") or {}).get("name") if isinstance(meta.get("suite"), dict) else None
    return status, its_suite if isinstance(its_suite, str) else None


def _no_record(status: str | None) -> str:
    if status == "running":
        return "still running, no report yet"
    if status == "failed":
        return "failed, no report"
    return f"no {RECORD_JSON} (a run from before records were kept, or its report is missing)"


def _line(e: BaseException) -> str:
    """An error as one short line: a note is not a traceback."""
    text = " ".join(str(e).split()) or type(e).__name__
    return printable(text[:200] + ("..." if len(text) > 200 else ""))


def publish_record(root: str, run_id: str, record_path: str | Path) -> str:
    """Write this run's record where later runs read it, `<root>/<run_id>/report/record.json`; return its URI.
    Only for a remote root: locally the runner publishes the whole report folder there."""
    target = uris.join(root, plain_name(run_id, "run id"), REPORT_DIR, RECORD_JSON)
    return uris.write_bytes(target, Path(record_path).read_bytes())


# --- the schema ---


def check_record(data: object) -> dict:
    """`data` if it is a record of this schema: every field the comparison reads has its type, every name is
    plain, every text printable and bounded. Raises UntrustedInput naming the first field that is not."""
    record = _mapping(data, "the record")
    if record.get("schema") != SCHEMA:
        raise UntrustedInput(f"schema {record.get('schema')!r}, not {SCHEMA}")
    plain_name(record.get("run_id"), "run_id")
    plain_name(record.get("suite"), "suite")
    try:
        if finished(record).tzinfo is None:
            raise ValueError
    except (TypeError, ValueError):
        raise UntrustedInput(f"finished_at {record.get('finished_at')!r} is not an ISO time with its zone") from None
    _mapping(record.get("settings"), "settings")
    if not isinstance(record.get("devices"), list) or not all(isinstance(d, str) for d in record["devices"]):
        raise UntrustedInput("devices is not a list of names")
    _text(record.get("verdict"), "verdict")
    winner = _mapping(record.get("winner"), "winner")
    if winner.get("optimizer") is not None:
        _text(winner["optimizer"], "winner.optimizer", 200)
    _flag(winner.get("significant"), "winner.significant")
    rows = record.get("rows")
    if not isinstance(rows, list):
        raise UntrustedInput("rows is not a list")
    for i, row in enumerate(rows):
        _row(_mapping(row, f"rows[{i}]"), f"rows[{i}]")
    names = [r["optimizer"] for r in rows]
    if len(set(names)) != len(names):
        raise UntrustedInput("an optimizer has two rows")
    variants = _mapping(record.get("variants"), "variants")
    if set(variants) != set(names):
        raise UntrustedInput("variants do not match the rows")
    for name, variant in variants.items():
        _variant(_mapping(variant, f"variants[{name}]"), f"variants[{name}]")
    _test_set_and_bits(record)
    changes = record.get("changes")
    if changes is not None:
        flags = _mapping(changes, "changes").get("flags")
        if not isinstance(flags, list):
            raise UntrustedInput("changes.flags is not a list")
        for i, f in enumerate(flags):
            _text(_mapping(f, f"changes.flags[{i}]").get("kind"), f"changes.flags[{i}].kind", 40)
            _text(f.get("text"), f"changes.flags[{i}].text")
    return record


def _mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise UntrustedInput(f"{what} is not a JSON object")
    return value


def _text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or printable(value) != value:
        raise UntrustedInput(f"{what} is not printable text of at most {limit} characters")
    return value


def _flag(value: object, what: str) -> None:
    if not isinstance(value, bool):
        raise UntrustedInput(f"{what} is not true or false")


def _number(value: object, what: str) -> None:
    if value is not None and not ((type(value) is int or type(value) is float) and math.isfinite(value)):
        raise UntrustedInput(f"{what} is not a finite number or null")


def _row(row: dict, what: str) -> None:
    _text(row.get("optimizer"), f"{what}.optimizer", 200)
    if row.get("status") not in STATUSES:
        raise UntrustedInput(f"{what}.status is not one of {', '.join(STATUSES)}")
    for key in NUMBERS:
        _number(row.get(key), f"{what}.{key}")
    for key in FLAGS:
        _flag(row.get(key), f"{what}.{key}")
    for key in set(SCALAR_COLUMNS) - {"optimizer", "status", *NUMBERS, *FLAGS}:
        if isinstance(row.get(key), str):
            _text(row[key], f"{what}.{key}", 200)
        elif not isinstance(row.get(key), bool):
            _number(row.get(key), f"{what}.{key}")
    if not isinstance(row.get("per_seed"), list):
        raise UntrustedInput(f"{what}.per_seed is not a list")
    for i, s in enumerate(row["per_seed"]):
        where = f"{what}.per_seed[{i}]"
        _mapping(s, where)
        if type(s.get("seed")) is not int:
            raise UntrustedInput(f"{where}.seed is not an integer")
        plain_name(s.get("trial"), f"{where}.trial")
        _flag(s.get("diverged"), f"{where}.diverged")
        _flag(s.get("stopped"), f"{where}.stopped")
        for key in ("test_accuracy", "train_seconds", "steps"):
            _number(s.get(key), f"{where}.{key}")


def _variant(variant: dict, what: str) -> None:
    hyper = _mapping(variant.get("hyperparameters"), f"{what}.hyperparameters")
    for key, value in hyper.items():
        if not (value is None or isinstance(value, (bool, str, int, float))):
            raise UntrustedInput(f"{what}.hyperparameters.{key} is not a plain value")
    cost = variant.get("step_cost")
    if cost is None:
        return
    _mapping(cost, f"{what}.step_cost")
    for key in ("seconds_per_step", "q1", "q3"):
        _number(cost.get(key), f"{what}.step_cost.{key}")


def _test_set_and_bits(record: dict) -> None:
    """The test set's fingerprint and, for every trial named, a bit per test example."""
    test_set, correct = record.get("test_set"), _mapping(record.get("correct"), "correct")
    if test_set is None:
        if correct:
            raise UntrustedInput("correct is given without its test_set")
        return
    _mapping(test_set, "test_set")
    n = test_set.get("examples")
    if type(n) is not int or not 0 < n <= MAX_RECORD_BYTES * 8:
        raise UntrustedInput("test_set.examples is not a positive count")
    _text(test_set.get("labels_sha256"), "test_set.labels_sha256", 64)
    if test_set.get("source_fingerprint") is not None:
        _text(test_set["source_fingerprint"], "test_set.source_fingerprint", 200)
    trials = {s["trial"] for r in record["rows"] for s in r["per_seed"]}
    for trial, bits in correct.items():
        if trial not in trials or not isinstance(bits, str):
            raise UntrustedInput(f"correct[{trial!r}] is not a trial of the rows")
        try:
            size = len(base64.b64decode(bits, validate=True))
        except ValueError:
            raise UntrustedInput(f"correct[{trial!r}] is not base64") from None
        if size != math.ceil(n / 8):
            raise UntrustedInput(f"correct[{trial!r}] holds {size} bytes, not a bit per test example")
