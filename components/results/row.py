"""The comparison row: one variant of a run, aggregated over its seeds, declared once.

The report step builds rows, writes them as
comparison.json (every field) and comparison.csv (the scalar fields, in the
order declared here), and the run history keeps their scalar fields; the
terminal table and the report's tables read them back. The rest of the code
works on the JSON form (`to_json`): rows are read back from runs anyone may
have written, which arrive as JSON.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields

NA = "n/a"
# The statuses of a variant none of whose seeds ended with finite numbers: no figures, never drawn or scored.
NON_FINITE = ("diverged", "fault")

Curve = list[float | None]  # one value per epoch, mean over the seeds that trained it


@dataclass(kw_only=True)
class ComparisonRow:
    """One optimizer variant. Figures are over its non-diverged seeds; None where there is nothing to measure."""

    optimizer: str  # the variant's name: the optimizer, with what tells it apart (batch size, learning rate)
    # ok; partial (some seeds went non-finite); diverged (all did, the loss rising first in at least one);
    # fault (all did by a numerical fault of the optimizer's update, the loss never rising: see `faults`);
    # stopped (all stopped early)
    status: str
    seeds_ok: int
    seeds_total: int
    diverged_at_epoch: int | None
    stopped_at_epoch: int | None
    base_optimizer: str | None
    family: str  # what learning-rate tuning groups variants by
    learning_rate: float | None
    batch_size: int | None
    lr_sweep: bool
    backend: str = "tensorflow"  # the Keras backend it trained on
    packed_with: int = 0  # trials its training task trained one after another, this one among them (0: alone)
    tuned: bool = False  # the variant a learning-rate sweep chose, on validation accuracy
    epochs: int
    steps: float | None
    step_seconds: float | None  # per-step cost, measured alone by the step-cost step
    cost_seconds: float | None  # steps times step_seconds: what training costs, whatever ran beside it
    cost_seconds_std: float | None
    train_seconds: float | None  # wall time, which depends on its neighbours
    train_seconds_std: float | None
    val_accuracy_epoch_1: float | None
    val_loss_epoch_1: float | None
    val_accuracy_epoch_5: float | None
    val_loss_epoch_5: float | None
    val_accuracy_last: float | None
    val_loss_last: float | None
    test_accuracy: float | None
    test_accuracy_std: float | None
    test_accuracy_ci_low: float | None
    test_accuracy_ci_high: float | None
    test_loss: float | None
    test_loss_std: float | None
    test_loss_ci_low: float | None
    test_loss_ci_high: float | None
    test_top3_accuracy: float | None
    test_macro_auc: float | None
    test_ece: float | None
    test_accuracy_diff_vs_baseline: float | None
    blessed: bool | None  # passed the suite's thresholds on every evaluated seed; None when none was evaluated
    optimizer_state_bytes: float | None
    optimizer_state_ratio: float | None
    parameter_bytes: float | None
    best: bool = False  # set by the verdict
    winner: bool = False
    p_vs_winner: float | None = None
    significant_vs_winner: bool | None = None
    detectable_vs_winner: float | None = None  # the smallest difference the test against the best could detect
    equivalent_to_winner: bool | None = None  # its 95% interval against the best lies within the suite's margin
    # What would decide a pair neither significant nor equivalent (None for a decided pair): the seeds that give
    # the test 80% power at the difference observed (None: no number would, with this test set), what those extra
    # trials cost to train (both variants, steps x per-step cost), and, on a limited test set, the test examples
    # that would at the run's seeds (significance.to_decide; significance.json says more).
    seeds_to_decide: int | None = None
    cost_to_decide_seconds: float | None = None
    examples_to_decide: int | None = None
    # Seeds until decided (--until-decided): better / worse (the leader than this variant), equivalent or
    # undecided, as the group-sequential test left it, and the seeds it was decided at; None without the test.
    decision_vs_leader: str | None = None
    decided_at_seeds: int | None = None
    # comparison.json only
    seeds: list[int | None]
    diverged_seeds: list[int | None]  # every seed that went non-finite, by divergence or by a fault
    faults: list[dict] = field(default_factory=list)  # {seed, step, weight} of each seed's numerical fault
    stopped_seeds: list[int | None]
    failed_thresholds: list[str]
    time_to_accuracy: dict[str, dict]
    per_label_accuracy: dict[str, float | None] | None
    confusion_matrix: list[list[int]] | None
    calibration: dict | None
    per_seed: list[dict]
    val_accuracy: Curve
    val_loss: Curve
    train_accuracy: Curve
    train_loss: Curve
    epoch_seconds: Curve
    elapsed_seconds: Curve
    elapsed_cost_seconds: Curve
    val_accuracy_std: Curve
    val_loss_std: Curve

    def to_json(self) -> dict:
        return asdict(self)


def _scalar(kind: object) -> bool:
    args = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    return all(a in (int, float, str, bool, type(None)) for a in args)


_HINTS = typing.get_type_hints(ComparisonRow)
# comparison.csv's columns, and what a run's history record keeps of each row: every scalar field, in order.
SCALAR_COLUMNS = tuple(f.name for f in fields(ComparisonRow) if _scalar(_HINTS[f.name]))


def contenders(rows: list[dict]) -> list[dict]:
    """The rows the verdict, the plots and the significance tests compare.

    Without a learning-rate sweep, every row. With one, per optimizer the default learning rate
    and the tuned one: the rest of the grid is in the sweep table and comparison.json.
    """
    return [r for r in rows if not r["lr_sweep"] or r["tuned"]]


def fmt(x: float | None, signed: bool = False) -> str:
    return NA if x is None else f"{x:+.4f}" if signed else f"{x:.4f}"


def fmt_time(seconds: float | None) -> str:
    """m:ss, as the seed article reports training time (minutes may exceed 59)."""
    if seconds is None:
        return NA
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def fmt_interval(low: float | None, high: float | None) -> str:
    return NA if low is None or high is None else f"[{low:.4f}, {high:.4f}]"


def display_name(row: dict) -> str:
    """The variant's name, marked when some or all of its seeds diverged."""
    if row["status"] == "diverged":
        return f"{row['optimizer']} (diverged)"
    if row["status"] == "fault":
        return f"{row['optimizer']} (numerical fault)"
    if row["status"] == "partial":
        return f"{row['optimizer']} (diverged {len(row['diverged_seeds'])}/{row['seeds_total']})"
    if row["status"] == "stopped":
        return f"{row['optimizer']} (stopped at ep {row['stopped_at_epoch']})"
    if row["stopped_seeds"]:
        return f"{row['optimizer']} (stopped {len(row['stopped_seeds'])}/{row['seeds_total']})"
    return row["optimizer"]


def last_epoch_label(rows: list[dict]) -> str:
    """ "ep10" when every trained variant ran the same number of epochs, else "last"."""
    counts = {r["epochs"] for r in rows if r["epochs"]}
    return f"ep{counts.pop()}" if len(counts) == 1 else "last"


def article_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(epoch label, key suffix) of the article's columns: epochs 1, 5 and the last, the last unless it is 1 or 5."""
    shown = [("ep1", "epoch_1"), ("ep5", "epoch_5")]
    last = last_epoch_label(rows)
    return shown if last in dict(shown) else [*shown, (last, "last")]


def article_header(rows: list[dict]) -> list[str]:
    columns = [f"Val {name} {label}" for label, _ in article_columns(rows) for name in ("acc", "loss")]
    return ["Optimizer", *columns, "Cost (m:ss)"]


def article_cells(row: dict, rows: list[dict]) -> list[str]:
    figures = [row[f"val_{name}_{key}"] for _, key in article_columns(rows) for name in ("accuracy", "loss")]
    return [display_name(row), *map(fmt, figures), fmt_time(row["cost_seconds"])]


def format_table(rows: list[dict]) -> str:
    """Fixed-width plain text: the article table plus test accuracy (with its CI over seeds) and loss."""
    multi = any(r["seeds_ok"] > 1 for r in rows)
    header = article_header(rows) + ["Test acc", *(["95% CI"] if multi else []), "Test loss"]
    body = [
        article_cells(r, rows)
        + [
            fmt(r["test_accuracy"]),
            *([fmt_interval(r["test_accuracy_ci_low"], r["test_accuracy_ci_high"])] if multi else []),
            fmt(r["test_loss"]),
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])
