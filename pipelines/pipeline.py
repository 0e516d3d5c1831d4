"""The optimizer comparison as one KFP pipeline:

    plan ─> ingest, init ─> ParallelFor(plan's tasks: train a trial or a pack of them) ─> tune
         ─> ParallelFor(tune's trials: train_confirmed)
         [─> decide ─> (ParallelFor(its trials: train) ─> decide_next) x rounds]
         ─> step_cost ─> evaluate (fan-in) ─┬─> report
                                            └─> ParallelFor(evaluated trials: trial_metrics)

The pipeline's parameters are the question, as a form a person fills in:
a suite and optional overrides, each described.
The plan step validates them as the CLI does and expands the suite into the
trials the first ParallelFor iterates over, writing the settings every later
step reads (plan.json). The suite decides the protocol at run time, so the
shape is the same for every suite: a tune step and a confirming round always
follow the first round. Under tune-confirm the first round is the learning-rate
grid on one seed, the tune step picks each optimizer's learning rate, and the
confirming round trains the chosen ones on every seed; under the default
protocol the first round trains every trial and the confirming round is one
trial that skips at once. The steps after training
take both rounds and use the confirming one when it trained anything
(`final_models`).

The same definition runs locally (`kfp.local`, `optbench run`) and compiles to
the IR YAML a Kubeflow cluster runs; `build_pipeline(configure)` lets the
compiler attach cluster settings (images, GPUs, resources) to each step
without touching the DAG. How the machine runs it (the
training threads, Beam's options, the runner's name) is fixed when the
pipeline is built, not asked in the form.
"""

from __future__ import annotations

import inspect
from typing import Callable

from kfp import dsl

from optbench.components.decide.component import decide, decide_next
from optbench.components.evaluate.component import evaluate
from optbench.components.ingest.component import ingest
from optbench.components.init_model.component import init_model
from optbench.components.notify.component import notify
from optbench.components.plan.component import plan
from optbench.components.question.form import parameters
from optbench.components.report.component import report
from optbench.components.step_cost.component import step_cost
from optbench.components.train.component import train, train_confirmed
from optbench.components.trial_metrics.component import trial_metrics
from optbench.components.tune.component import tune

PIPELINE_NAME = "optbench-compare"
DESCRIPTION = "Which optimizer should I train this network with?"
Configure = Callable[[dsl.PipelineTask, str], None]


def _with_form(body: Callable[[dict], object], returns: type) -> Callable:
    """`body(form)` as a function whose parameters are the form's (types, defaults, and descriptions in the
    docstring, which KFP puts in the compiled IR): the form is declared once, in `question.form`."""
    form = parameters()

    def compare_optimizers(*values):
        return body(dict(zip(form, values)))

    # inspect (and so KFP) reads __signature__, which typeshed does not declare on functions
    compare_optimizers.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
            for name, (kind, default, _) in form.items()
        ],
        return_annotation=returns,
    )
    compare_optimizers.__doc__ = f"{DESCRIPTION}\n\nArgs:\n" + "".join(
        f"    {name}: {help}\n" for name, (_, _, help) in form.items()
    )
    return compare_optimizers


def build_pipeline(
    configure: Configure | None = None,
    *,
    parallelism: int = 0,
    train_threads: int = 0,
    beam_args: list[str] | None = None,
    runner: str = "",
    run_id: str = "",
    notify_failures: bool = False,
    rounds: int = 0,
):
    """The pipeline function; `configure(task, step)` is called on every task it creates.

    `parallelism` caps how many training tasks run at once (0: no cap beyond the runner's own), and a suite
    that leaves packing to the runner packs its first round into that many tasks (0: a task per trial); `train_threads`
    is TensorFlow's threads per training task (0: TensorFlow's choice); `beam_args` go to ingest's and
    evaluate's Beam; `runner` names what runs it in the report; `run_id` is the run's id, by default KFP's.
    `notify_failures` wraps the comparison in an exit handler whose task alerts the webhook when the run
    fails (on a cluster; a local run's runner does it). KFP forbids outputs then, so the
    pipeline returns the report only without it. `rounds` > 0 adds the sequential test (seeds until
    decided): a look after the run's own seeds, then that many rounds, each one seed of the variants still
    undecided and a look; a round with nothing left to train skips at once. A form asking for more rounds
    than the pipeline holds is refused by its plan step.
    """

    def step(task: dsl.PipelineTask, name: str, display: str) -> dsl.PipelineTask:
        task.set_display_name(display)
        if configure is not None:
            configure(task, name)
        return task

    def comparison(form: dict):
        planned = step(
            plan(
                **form,
                run_id=run_id or dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                runner=runner,
                rounds=rounds,
                slots=parallelism,
            ),
            "plan",
            "plan (validate)",
        )
        settings = planned.outputs["settings"]
        data = step(
            ingest(
                data_source=form["data_source"],
                dataset_name=form["dataset"],
                validation_fraction=form["validation_fraction"],
                train_limit=form["train_limit"],
                test_limit=form["test_limit"],
                beam_args=list(beam_args or []),
            ),
            "ingest",
            "ingest (Beam)",
        ).after(planned)  # a bad form stops before any work
        init = step(init_model(settings=settings), "init_model", "initial weights")
        hardware = dict(threads=train_threads, mixed_precision=form["mixed_precision"], xla=form["xla"])
        inputs = dict(dataset=data.output, initial=init.output, settings=settings, **hardware)
        with dsl.ParallelFor(planned.outputs["Output"], parallelism=parallelism) as trial:
            first = step(train(trial_json=trial, **inputs), "train", "train (Keras)")
        tuned = step(
            tune(models=dsl.Collected(first.outputs["model"]), settings=settings),
            "tune",
            "choose learning rates",
        )
        with dsl.ParallelFor(tuned.outputs["Output"], parallelism=parallelism) as trial:
            confirming = step(
                train_confirmed(trial_json=trial, tuning=tuned.outputs["tuning"], **inputs),
                "train",
                "train (Keras), confirming",
            )

        def both() -> dict:
            # One Collected per consumer: KFP 2.17 fails to compile a Collected object shared by two tasks.
            return dict(
                models=dsl.Collected(first.outputs["model"]), confirmed=dsl.Collected(confirming.outputs["model"])
            )

        added = {}  # the last look's folder: the rounds' models and the sequential test's record
        if rounds:
            look = step(decide(dataset=data.output, **both(), settings=settings), "decide", "decide (look 1)")
            for number in range(1, rounds + 1):
                with dsl.ParallelFor(look.outputs["Output"], parallelism=parallelism) as trial:
                    more = step(train(trial_json=trial, **inputs), "train", f"train (Keras), round {number}")
                look = step(
                    decide_next(
                        dataset=data.output,
                        earlier=look.outputs["rounds"],
                        latest=dsl.Collected(more.outputs["model"]),
                        settings=settings,
                    ),
                    "decide",
                    f"decide (look {number + 1})",
                )
            added = dict(rounds=look.outputs["rounds"])
        cost = step(
            step_cost(dataset=data.output, initial=init.output, **both(), **hardware), "step_cost", "step cost (Keras)"
        )
        if rounds:
            cost.after(look)  # timed alone: after the rounds' training too
        evaluation = step(
            evaluate(dataset=data.output, **both(), **added, settings=settings, beam_args=list(beam_args or [])),
            "evaluate",
            "evaluate (TFMA)",
        ).after(cost)  # the step cost is timed alone: nothing else runs then
        with dsl.ParallelFor(evaluation.outputs["Output"]) as trial:
            step(
                trial_metrics(evaluation=evaluation.outputs["evaluation"], trial_json=trial),
                "trial_metrics",
                "metrics (KFP UI)",
            )
        published = step(
            report(
                dataset=data.output,
                **both(),
                **added,
                evaluation=evaluation.outputs["evaluation"],
                step_cost=cost.output,
                settings=settings,
                tuning=tuned.outputs["tuning"],
                mlflow_uri=form["mlflow_uri"],
                history_root=form["history_root"],
            ),
            "report",
            "report",
        )
        return published.outputs["report_dir"]

    def guarded(form: dict) -> None:
        alert = notify(suite=form["suite"], run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
        with dsl.ExitHandler(step(alert, "notify", "alert on failure"), name="comparison"):
            comparison(form)

    if notify_failures:
        return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(_with_form(guarded, inspect.Signature.empty))
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(_with_form(comparison, dsl.Artifact))
