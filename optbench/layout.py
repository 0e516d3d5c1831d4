"""The run layout: every file and folder name of a local run and of a published one, and reading a run back.

A local run (`optbench run`) writes

    <output>/<run_id>/
        run.json        settings and status (written first, updated at the end)
        owner.lock      who is writing the run now (a lock that ends with its process: `ownership`)
        pipeline.log    the log of every step
        pipeline/       every KFP artifact, as kfp.local lays them out
        cache/          every finished task's outputs, for --resume
        report/         the report step's folder, copied here once every step succeeded

and `optbench run --publish` uploads it to gs://BUCKET/PREFIX/<suite>/<run_id>/ as

        run.json, pipeline.log, report/...
        data/...            the ingest step's dataset
        models/<trial>/...  each trained model
        eval/...            the evaluation
        _COMPLETE           written last: every object's size and CRC32C

The names of the files inside each step's folder are the steps' contract
(`shared.schema`).
"""

from __future__ import annotations

import json
from pathlib import Path

from optbench.components.shared.files import read_json
from optbench.components.shared.schema import COMPARISON_JSON, REPORT_DIR, REPORT_HTML, RUN_JSON
from optbench.components.shared.untrusted import plain_name

PIPELINE_LOG = "pipeline.log"
PIPELINE_DIR = "pipeline"
CACHE_DIR = "cache"
OWNER_FILE = "owner.lock"
# The published run: folder names for the steps' outputs, and the marker written last.
DATA_DIR = "data"
MODELS_DIR = "models"
EVAL_DIR = "eval"
MARKER = "_COMPLETE"

REPORT_COMPARISON = f"{REPORT_DIR}/{COMPARISON_JSON}"  # a run's comparison, local or published
REPORT_PAGE = f"{REPORT_DIR}/{REPORT_HTML}"


def comparison_rows(rows: object, what: str) -> list[dict]:
    """`rows` if they are a comparison.json's rows (a list of {optimizer: name, ...}): one may come from anyone."""
    if not isinstance(rows, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("optimizer"), str)
        and (r.get("test_accuracy") is None or type(r["test_accuracy"]) in (int, float))
        for r in rows
    ):
        raise ValueError(f"{what}: not a comparison (a list of rows, each with an optimizer and its test_accuracy)")
    return rows


def read_run(run_dir: str | Path) -> dict:
    """A run folder's id, status, duration, settings and comparison rows (None when it published no report).

    The folder may have come from anyone (a colleague's copy, a download): its files are checked, not trusted.
    """
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no {RUN_JSON}")
    try:
        meta = read_json(run_dir / RUN_JSON)
        comparison = run_dir / REPORT_COMPARISON
        rows = comparison_rows(read_json(comparison), str(comparison)) if comparison.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{run_dir}: cannot read the run ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config") or {}, dict):
        raise ValueError(f"{run_dir / RUN_JSON}: not a run record (a mapping with run_id, status, config)")
    seconds = meta.get("seconds")
    return {
        "run_id": plain_name(meta.get("run_id") or run_dir.name, f"{run_dir / RUN_JSON}: run_id"),
        "status": str(meta.get("status")) if meta.get("status") is not None else None,
        "seconds": seconds if type(seconds) in (int, float) else None,
        "config": meta.get("config") or {},
        "dir": str(run_dir),
        "rows": rows,
    }
