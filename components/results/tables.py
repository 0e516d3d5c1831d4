"""The report's tables, as {"header", "rows", "numeric"} dicts that both templates render.

Columns that would be empty for a run are left out (confidence intervals
with one seed, AUC and calibration when the evaluation did not compute
them, p-values without significance tests), so a small run's report stays
as compact as the seed article's table.
"""

from __future__ import annotations

import json
from typing import Any

from optbench.components.results.row import (
    NA,
    NON_FINITE,
    article_cells,
    article_header,
    display_name,
    fmt,
    fmt_interval,
    fmt_time,
    last_epoch_label,
)
from optbench.components.shared.schema import SPLITS

Table = dict[str, Any]  # {"header": [str], "rows": [[str]], "numeric": bool (right-align all but column 1)}
MIB = 1024 * 1024


def article_table(rows: list[dict]) -> Table:
    """The seed article's table: validation accuracy/loss at epochs 1, 5 and the last, and training time."""
    return {"header": article_header(rows), "rows": [article_cells(r, rows) for r in rows], "numeric": True}


def _any(rows: list[dict], key: str) -> bool:
    return any(r[key] is not None for r in rows)


def metrics_table(rows: list[dict], baseline: str | None) -> Table:
    """TFMA's metrics on the held-out test split, mean over seeds, with a 95% interval when there are several."""
    multi = any(r["seeds_ok"] > 1 for r in rows)
    columns: list[tuple[str, Any]] = [("Optimizer", display_name), ("Seeds", lambda r: f"{r['seeds_ok']}")]
    columns.append(("Test accuracy", lambda r: fmt(r["test_accuracy"])))
    if multi:
        columns.append(("95% CI", lambda r: fmt_interval(r["test_accuracy_ci_low"], r["test_accuracy_ci_high"])))
    columns.append(("Test loss", lambda r: fmt(r["test_loss"])))
    if multi:
        columns.append(("95% CI", lambda r: fmt_interval(r["test_loss_ci_low"], r["test_loss_ci_high"])))
    columns.append(("Top-3 accuracy", lambda r: fmt(r["test_top3_accuracy"])))
    if _any(rows, "test_macro_auc"):
        columns.append(("Macro AUC", lambda r: fmt(r["test_macro_auc"])))
    if _any(rows, "test_ece"):
        columns.append(("Calibration error", lambda r: fmt(r["test_ece"])))
    columns.append(
        (
            "Diff vs baseline",
            lambda r: (
                "baseline" if r["optimizer"] == baseline else fmt(r["test_accuracy_diff_vs_baseline"], signed=True)
            ),
        )
    )
    columns.append(("Blessed", lambda r: {True: "yes", False: "no", None: NA}[r["blessed"]]))
    if _any(rows, "p_vs_winner"):
        columns.append(
            ("p vs best (Holm)", lambda r: "winner" if r["winner"] else "best" if r["best"] else _p(r["p_vs_winner"]))
        )
    return {
        "header": [h for h, _ in columns],
        "rows": [[cell(r) for _, cell in columns] for r in rows],
        "numeric": True,
    }


def _p(p: float | None) -> str:
    if p is None:
        return NA
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def efficiency_table(rows: list[dict]) -> Table:
    """What a variant costs: cost to reach each validation accuracy target, total cost, per-step cost, wall time
    on this (shared) machine, optimizer memory."""
    targets = sorted({t for r in rows for t in r["time_to_accuracy"]}, key=float)

    def reach(row: dict, target: str) -> str:
        hit = row["time_to_accuracy"].get(target)
        if row["status"] in NON_FINITE:
            return NA
        if not hit or not hit["reached"]:
            return "not reached"
        cell = f"{fmt_time(hit.get('cost_seconds'))} (ep {hit['epoch']:.3g})"
        return cell if hit["reached"] == hit["of"] else f"{cell}, {hit['reached']}/{hit['of']} seeds"

    def state(row: dict) -> str:
        b = row["optimizer_state_bytes"]
        return NA if b is None else f"{b / MIB:.2f}"

    def ratio(row: dict) -> str:
        return NA if row["optimizer_state_ratio"] is None else f"{row['optimizer_state_ratio']:.2g}x"

    return {
        "header": [
            "Optimizer",
            *(f"Cost to {t}" for t in targets),
            "Total cost (m:ss)",
            "Per step (ms)",
            "Wall time, shared machine (m:ss)",
            "Optimizer state (MiB)",
            "State / parameters",
        ],
        "rows": [
            [
                display_name(r),
                *(reach(r, t) for t in targets),
                fmt_time(r["cost_seconds"]),
                NA if r["step_seconds"] is None else f"{1e3 * r['step_seconds']:.3g}",
                fmt_time(r["train_seconds"]),
                state(r),
                ratio(r),
            ]
            for r in rows
        ],
        "numeric": True,
    }


def sweep_table(rows: list[dict]) -> Table:
    """Per optimizer in a learning-rate sweep: every learning rate tried, the default and the tuned one marked."""
    swept = {r["family"] for r in rows if r["lr_sweep"]}
    members = sorted((r for r in rows if r["family"] in swept), key=lambda r: (r["family"], r["learning_rate"] or 0.0))

    def role(r: dict) -> str:
        return ", ".join(n for n, on in (("default", not r["lr_sweep"]), ("tuned", r["tuned"])) if on)

    return {
        "header": ["Optimizer", "Learning rate", "", f"Val acc {last_epoch_label(members)}", "Test accuracy", "Status"],
        "rows": [
            [
                r["family"],
                f"{r['learning_rate']:g}" if r["learning_rate"] is not None else NA,
                role(r),
                fmt(r["val_accuracy_last"]),
                fmt(r["test_accuracy"]),
                r["status"],
            ]
            for r in members
        ],
        "numeric": True,
    }


def protocol_table(rows: list[dict]) -> Table:
    """Tune-confirm: per optimizer, its default and its tuned learning rate, each with test accuracy over seeds."""

    def cells(row: dict | None) -> list[str]:
        if row is None:
            return [NA, NA, NA]
        lr = f"{row['learning_rate']:g}" if row["learning_rate"] is not None else NA
        return [lr, fmt(row["test_accuracy"]), fmt_interval(row["test_accuracy_ci_low"], row["test_accuracy_ci_high"])]

    families = sorted({r["family"] for r in rows})
    default = {r["family"]: r for r in rows if not r["lr_sweep"]}
    tuned = {r["family"]: r for r in rows if r["tuned"]}
    return {
        "header": ["Optimizer", "Default lr", "Test acc", "95% CI", "Tuned lr", "Test acc", "95% CI"],
        "rows": [[f, *cells(default.get(f)), *cells(tuned.get(f))] for f in families],
        "numeric": True,
    }


def _to_decide(comparison: dict) -> str:
    """What would decide an undecided pair: "9 seeds, +3:20 training" ("at least" with one seed), "never" (no number
    of seeds, with this test set), with the test examples that would on a limited test set; n/a when decided."""
    todo = comparison["to_decide"]
    if todo is None:
        return NA
    examples = f"{todo['examples']:,} examples" if todo["examples"] else None
    if todo["seeds"] is None:
        return f"never ({examples} would)" if examples else "never"
    cell = f"{'at least ' if todo['seeds_at_least'] else ''}{todo['seeds']} seeds"
    if todo["cost_seconds"] is not None:
        cell += f", +{fmt_time(todo['cost_seconds'])} training"
    return f"{cell}; or {examples}" if examples else cell


def significance_table(significance: dict) -> Table:
    """The winner against each other variant: paired difference, its interval, raw and Holm-adjusted p, the
    smallest difference the test could detect, and what would decide an undecided pair."""
    test_names = {"mcnemar-exact": "McNemar (exact)", "paired-bootstrap": "paired bootstrap"}
    return {
        "header": [
            "Best vs",
            "Seeds",
            "Accuracy difference",
            "95% CI",
            "p",
            "p (Holm)",
            "Significant",
            f"Detectable ({significance['power']:.0%} power)",
            f"Equivalent (±{significance['margin']:g})",
            f"To decide ({significance['power']:.0%} power)",
            "Test",
        ],
        "rows": [
            [
                c["other"],
                str(len(c["seeds"])),
                fmt(c["difference"], signed=True),
                fmt_interval(c["ci_low"], c["ci_high"]),
                _p(c["p_value"]),
                _p(c["p_holm"]),
                "yes" if c["significant"] else "no",
                fmt(c["detectable"]),
                "yes" if c["equivalent"] else "no",
                _to_decide(c),
                test_names.get(c["test"], c["test"]),
            ]
            for c in significance["comparisons"]
        ],
        "numeric": True,
    }


def rounds_table(record: dict) -> Table:
    """Seeds until decided: every look, each pair it tested against the leader, and what it decided then."""
    return {
        "header": [
            "Seeds",
            f"{record['leader']} vs",
            "Accuracy difference",
            "Repeated interval",
            "t",
            "Boundary",
            "Decision",
            f"Detectable by {record['max_seeds']} seeds (80% power)",
        ],
        "rows": [
            [
                str(look["seeds"]),
                pair["other"],
                fmt(pair["difference"], signed=True),
                fmt_interval(*pair["interval"]),
                f"{pair['z']:.2f}",
                f"{pair['boundary']:.2f}",
                pair["decision"],
                fmt(pair["detectable"]),
            ]
            for look in record["looks"]
            for pair in look["pairs"]
        ],
        "numeric": True,
    }


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
    """Free-form run settings as key/value rows: nested mappings flattened to dotted keys, lists joined."""

    def show(v: Any) -> str:
        if v is None:
            return NA
        if isinstance(v, (list, tuple)):
            return (
                ", ".join(show(x) for x in v)
                if all(not isinstance(x, (dict, list)) for x in v)
                else json.dumps(v, sort_keys=True, default=str)
            )
        return str(v)

    def flat(prefix: str, value: Any):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                yield from flat(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            yield prefix, show(value)

    return {"header": ["Setting", "Value"], "rows": [list(kv) for kv in flat("", settings or {})], "numeric": False}
