"""One comparison row per optimizer, and the tables and words the report makes of them.

Pure functions over plain dicts (no files, no plotting), so the CLI can print
`format_table` after a run and the tests can check every number directly.
Every metric passes through `finite`: a diverged optimizer's NaN losses become
None here, once, so no NaN can reach comparison.json, a chart or a table.
"""
from __future__ import annotations

import json
import math
from typing import Any

from components.common.schema import SPLITS

NA = "n/a"

# The columns comparison.csv carries (comparison.json also has the per-epoch lists).
SCALAR_COLUMNS = (
    "optimizer", "status", "diverged_at_epoch", "learning_rate", "epochs", "train_seconds",
    "val_accuracy_epoch_1", "val_loss_epoch_1", "val_accuracy_epoch_5", "val_loss_epoch_5",
    "val_accuracy_last", "val_loss_last",
    "test_accuracy", "test_loss", "test_top3_accuracy", "test_accuracy_diff_vs_baseline", "blessed",
)
# Row list -> history.json epoch field.
_SERIES = {"val_accuracy": "val_accuracy", "val_loss": "val_loss", "train_accuracy": "accuracy",
           "train_loss": "loss", "epoch_seconds": "seconds"}

Table = dict[str, Any]  # {"header": [str], "rows": [[str]], "numeric": bool (right-align all but column 1)}


def finite(x: Any) -> float | None:
    """The number as a float, or None when missing or non-finite (NaN, inf, null)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def comparison_rows(histories: list[dict], evaluation: dict) -> list[dict]:
    """One row per optimizer, best test accuracy first; optimizers without test metrics last."""
    if not histories:
        raise ValueError("no training histories given: the report compares at least one optimizer")
    names = [h.get("optimizer") for h in histories]
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError("every history needs a non-empty 'optimizer' name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"optimizer(s) with more than one history: {', '.join(repeated)}")
    models = (evaluation or {}).get("models") or {}
    rows = [_row(h, models.get(h["optimizer"])) for h in histories]
    # Ties and untested runs fall back to final validation accuracy, then name, so the order is stable.
    return sorted(rows, key=lambda r: (r["test_accuracy"] is None, -(r["test_accuracy"] or 0.0),
                                       r["val_accuracy_last"] is None, -(r["val_accuracy_last"] or 0.0),
                                       r["optimizer"]))


def _row(history: dict, metrics: dict | None) -> dict:
    epochs = sorted(history.get("epochs") or [], key=lambda e: e["epoch"])
    series = {key: [finite(e.get(field)) for e in epochs] for key, field in _SERIES.items()}
    n = len(epochs)

    def at(key: str, epoch: int) -> float | None:
        return series[key][epoch - 1] if 1 <= epoch <= n else None

    # A null/NaN loss is divergence whatever the trainer concluded (it may have written NaN as null).
    bad = [e["epoch"] for e in epochs if any(k in e and finite(e[k]) is None for k in ("loss", "val_loss"))]
    diverged = history.get("status") == "diverged" or bool(bad)
    m = metrics or {}
    return {
        "optimizer": history["optimizer"],
        "status": "diverged" if diverged else "ok",
        "diverged_at_epoch": (history.get("diverged_at_epoch") or next(iter(bad), None)) if diverged else None,
        "learning_rate": finite((history.get("optimizer_config") or {}).get("learning_rate")),
        "epochs": n,
        "train_seconds": finite(history.get("train_seconds")),
        "val_accuracy_epoch_1": at("val_accuracy", 1), "val_loss_epoch_1": at("val_loss", 1),
        "val_accuracy_epoch_5": at("val_accuracy", 5), "val_loss_epoch_5": at("val_loss", 5),
        "val_accuracy_last": at("val_accuracy", n), "val_loss_last": at("val_loss", n),
        "test_accuracy": finite(m.get("accuracy")),
        "test_loss": finite(m.get("loss")),
        "test_top3_accuracy": finite(m.get("top3_accuracy")),
        "test_accuracy_diff_vs_baseline": finite(m.get("accuracy_diff_vs_baseline")),
        "blessed": None if m.get("blessed") is None else bool(m["blessed"]),
        **series,
    }


def fmt(x: float | None, signed: bool = False) -> str:
    return NA if x is None else f"{x:+.4f}" if signed else f"{x:.4f}"


def fmt_time(seconds: float | None) -> str:
    """m:ss, as the seed article reports training time (minutes may exceed 59)."""
    if seconds is None:
        return NA
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _name(row: dict) -> str:
    return f"{row['optimizer']} (diverged)" if row["status"] == "diverged" else row["optimizer"]


def article_table(rows: list[dict]) -> Table:
    """The seed article's table: validation accuracy/loss at epochs 1, 5 and the last, and training time."""
    counts = {r["epochs"] for r in rows}
    last = f"ep{min(counts)}" if len(counts) == 1 and min(counts) > 0 else "last"
    return {"header": ["Optimizer", "Val acc ep1", "Val loss ep1", "Val acc ep5", "Val loss ep5",
                       f"Val acc {last}", f"Val loss {last}", "Time (m:ss)"],
            "rows": [[_name(r)] + [fmt(r[k]) for k in ("val_accuracy_epoch_1", "val_loss_epoch_1",
                                                       "val_accuracy_epoch_5", "val_loss_epoch_5",
                                                       "val_accuracy_last", "val_loss_last")]
                     + [fmt_time(r["train_seconds"])] for r in rows], "numeric": True}


def metrics_table(rows: list[dict], evaluation: dict) -> Table:
    """TFMA's metrics on the held-out test split."""
    baseline = (evaluation or {}).get("baseline")

    def diff(r: dict) -> str:
        return "baseline" if r["optimizer"] == baseline else fmt(r["test_accuracy_diff_vs_baseline"], signed=True)

    return {"header": ["Optimizer", "Test accuracy", "Test loss", "Top-3 accuracy", "Diff vs baseline", "Blessed"],
            "rows": [[_name(r), fmt(r["test_accuracy"]), fmt(r["test_loss"]), fmt(r["test_top3_accuracy"]),
                      diff(r), {True: "yes", False: "no", None: NA}[r["blessed"]]] for r in rows], "numeric": True}


def dataset_table(stats: dict) -> Table:
    splits = (stats or {}).get("splits") or {}
    rows = []
    for split in [s for s in SPLITS if s in splits] + [s for s in splits if s not in SPLITS]:
        per_class = [c for c in (splits[split].get("per_class") or {}).values() if isinstance(c, int)]
        spread = f"{min(per_class):,}-{max(per_class):,}" if per_class else NA
        count = splits[split].get("count")
        rows.append([split, NA if count is None else f"{count:,}", spread])
    return {"header": ["Split", "Examples", "Per class (min-max)"], "rows": rows, "numeric": True}


def settings_table(settings: dict) -> Table:
    """Free-form run settings as key/value rows; nested values shown as compact JSON."""
    def show(v: Any) -> str:
        if v is None:
            return NA
        return json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list, tuple)) else str(v)

    return {"header": ["Setting", "Value"], "rows": [[str(k), show(v)] for k, v in (settings or {}).items()],
            "numeric": False}


def verdict(rows: list[dict]) -> str:
    """One paragraph that answers the question from the numbers: best, margin, worst, fastest, failures."""
    tested = [r for r in rows if r["test_accuracy"] is not None]  # rows are already ranked
    parts = []
    if tested:
        best = tested[0]
        line = f"{best['optimizer']} reached the highest test accuracy, {fmt(best['test_accuracy'])}"
        if len(tested) > 1:
            second = tested[1]
            margin = best["test_accuracy"] - second["test_accuracy"]
            line += (f", tied with {second['optimizer']}" if margin == 0 else
                     f", {fmt(margin)} ahead of the runner-up {second['optimizer']} ({fmt(second['test_accuracy'])})")
            if len(tested) > 2:
                line += f"; the weakest was {tested[-1]['optimizer']} ({fmt(tested[-1]['test_accuracy'])})"
        parts.append(line + ".")
    else:
        by_val = [r for r in rows if r["val_accuracy_last"] is not None]
        parts.append("No optimizer has test metrics" + (
            f"; by final validation accuracy the best was {by_val[0]['optimizer']} "
            f"({fmt(by_val[0]['val_accuracy_last'])})." if by_val else "."))
    # A run that stopped early is not "fast", so diverged runs are left out of the timing.
    timed = sorted((r for r in rows if r["train_seconds"] is not None and r["status"] == "ok"),
                   key=lambda r: r["train_seconds"])
    if timed:
        line = f"{timed[0]['optimizer']} trained fastest ({fmt_time(timed[0]['train_seconds'])})"
        if len(timed) > 1:
            line += f", {timed[-1]['optimizer']} slowest ({fmt_time(timed[-1]['train_seconds'])})"
        parts.append(line + ".")
    for r in rows:
        if r["status"] == "diverged":
            at = f" at epoch {r['diverged_at_epoch']}" if r["diverged_at_epoch"] else ""
            parts.append(f"{r['optimizer']} diverged{at} (non-finite loss), so its numbers say little.")
    missing = [r["optimizer"] for r in rows if r["test_accuracy"] is None]
    if missing and tested:
        parts.append(f"No test metrics for {', '.join(missing)} (evaluation missing).")
    blessed = [r["optimizer"] for r in rows if r["blessed"]]
    if any(r["blessed"] is not None for r in rows):
        parts.append(f"TFMA blessed {', '.join(blessed)}." if blessed else "TFMA blessed no model.")
    return " ".join(parts)


def format_table(rows: list[dict]) -> str:
    """Fixed-width plain text: the article table plus test accuracy and loss, for the terminal."""
    article = article_table(rows)
    header = article["header"] + ["Test acc", "Test loss"]
    body = [cells + [fmt(r["test_accuracy"]), fmt(r["test_loss"])] for cells, r in zip(article["rows"], rows)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])
