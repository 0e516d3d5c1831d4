"""`optbench run`, `optbench suites`, `optbench optimizers`: run a comparison on this machine, and what it can run."""

from __future__ import annotations

from pathlib import Path

import click

from optbench.cli.config import NOTIFY_OPTION, SUITE_OPTIONS, apply, friendly, run_config
from optbench.components.question import suites
from optbench.components.shared.optimizers import REGISTRY
from optbench.local_run import RUNNERS


@click.command()
@apply(*SUITE_OPTIONS)
@click.option(
    "--output",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Runs are written to OUTPUT/<run_id>/.",
)
@click.option(
    "--runner",
    type=click.Choice(RUNNERS),
    default="subprocess",
    show_default=True,
    help="How tasks run: processes of this Python, or each in a container of the CPU image (`make images`).",
)
@click.option(
    "--image",
    default=None,
    help="With --runner docker: the image every task runs in [default: the CPU image `make images` built "
    "from this commit].",
)
@click.option("--beam-runner", default=None, help="Beam runner for ingest and evaluate (default: in-process).")
@click.option("--beam-arg", "beam_args", multiple=True, help="Extra Beam pipeline option, e.g. --beam-arg=--region=x.")
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    default=None,
    help="Finish an interrupted run in OUTPUT: its settings, only its unfinished tasks.",
)
@click.option(
    "--publish",
    metavar="gs://BUCKET/PREFIX",
    default=None,
    help="Upload the finished run to Cloud Storage (gs://BUCKET/PREFIX/<suite>/<run_id>/).",
)
@NOTIFY_OPTION
@click.pass_context
@friendly
def run(
    ctx: click.Context,
    notify: str,
    runner: str,
    image: str | None,
    beam_runner: str | None,
    beam_args: tuple[str, ...],
    output: str,
    resume_id: str | None,
    publish: str | None,
    **opts,
) -> None:
    """Run the whole comparison locally with kfp.local and print the table."""
    from optbench.components.results.row import format_table
    from optbench.components.shared.schema import CHANGES_JSON, REPORT_HTML
    from optbench.local_run import resume_local, run_local
    from optbench.storage import PublishError, publish_run, split_gs

    if publish is not None:
        split_gs(publish)  # a wrong destination is said before the run, not after it
    beam = ([f"--runner={beam_runner}"] if beam_runner else []) + list(beam_args)
    if image and runner != "docker":
        raise click.UsageError("--image names the image of --runner docker; add --runner docker")
    if resume_id is not None:  # "" is refused as a run id, never read as "no resume"
        result = resume_local(resume_id, output, verbose=ctx.obj["verbose"], notify=notify)
    else:
        config = run_config(opts, beam)
        result = run_local(config, output, verbose=ctx.obj["verbose"], runner=runner, image=image, notify=notify)
    click.echo(format_table(result.rows))
    click.echo(f"\nrun {result.run_id} finished in {result.seconds:.0f}s")
    click.echo(f"report: {result.report_dir / REPORT_HTML}")
    _echo_changes(result.report_dir / CHANGES_JSON)
    if publish is not None:
        try:
            click.echo(f"published: {publish_run(result.run_dir, publish, suite=result.suite)}")
        except PublishError as e:
            raise click.ClickException(f"the run succeeded but publishing failed: {e}") from None


def _echo_changes(path: Path) -> None:
    """What changed since the suite's previous run, as the report decided it."""
    from optbench.components.shared.files import read_json
    from optbench.components.shared.untrusted import printable

    changes = read_json(path) if path.is_file() else {}
    if not changes.get("since"):
        return
    flags = changes["flags"]
    said = f"{len(flags)} change(s)" if flags else "nothing changed"
    click.echo(f"since run {changes['since']['run_id']}: {said}")
    for flag in flags:
        click.echo(printable(f"  - {flag['text']}"))


@click.command("suites")
@click.option("--show", metavar="NAME", default=None, help="Print one suite's YAML (copy it, edit it, pass the file).")
def suites_command(show: str | None) -> None:
    """List the shipped suites."""
    if show is not None:
        path = suites.available().get(show)
        if path is None:
            raise click.ClickException(f"unknown suite {show!r}; shipped: {', '.join(suites.available())}")
        click.echo(path.read_text(), nl=False)
        return
    for name, path in suites.available().items():
        suite = suites.load(str(path))
        click.echo(f"{name:<11} {len(suites.expand(suite)):>3} trials  {suite['description']}")


@click.command()
def optimizers() -> None:
    """List the optimizers and their defaults."""
    for spec in REGISTRY.values():
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        click.echo(f"{spec.name:<10} {spec.class_name}({params})  {spec.summary}")


@click.command("estimate")
@apply(*SUITE_OPTIONS)
@click.option("--parallel", default=8, show_default=True, help="Trials training at once on the cluster (nodes).")
@click.option("--gpus", default=1, show_default=True, help="GPUs per trial's node.")
@click.option(
    "--costs-from",
    metavar="PATH",
    default=None,
    help="Per-step costs from a finished run's step_cost.json (the file or the run's folder), e.g. a cluster "
    "run's; default: measured here, now.",
)
@friendly
def estimate_command(parallel: int, gpus: int, costs_from: str | None, **opts) -> None:
    """What a suite costs before you submit it: trials, steps, compute, wall time and GPU-hours on the cluster."""
    from optbench.components.question.suites import packs
    from optbench.estimate import POD_START_SECONDS, estimate

    config = run_config(opts)
    suite = config.resolve()
    if costs_from is None:
        click.echo("measuring each variant's training step here (--costs-from reuses a run's figures) ...", err=True)
    e = estimate(config, parallel, gpus, costs_from)
    click.echo(
        f"suite {suite['name']}: {len(e.trials)} trials ({suite['model']}, {suite['epochs']} epochs, "
        f"{e.train_examples:,} training examples); per-step costs: {e.device}\n"
    )
    click.echo(f"{'variant':<28} {'trials':>6} {'steps/trial':>12} {'ms/step':>9} {'compute/trial':>14}")
    for variant in dict.fromkeys(t["variant"] for t in e.trials):
        same = [t for t in e.trials if t["variant"] == variant]
        t = same[0]
        click.echo(
            f"{variant:<28} {len(same):>6} {t['steps']:>12,} {1e3 * t['step_seconds']:>9.2f} "
            f"{_duration(t['compute_seconds']):>14}"
        )
    click.echo(
        f"\ntotal: {e.steps:,} steps, {_duration(e.compute_seconds)} of training steps\n"
        f"cluster ({parallel} pods at once, {POD_START_SECONDS:.0f} s start-up per pod, {gpus} GPU(s) per pod):"
    )
    for label, pack in (("a pod per trial", 1), (f"packed, up to {e.pack} trials per pod in turn", e.pack)):
        click.echo(
            f"  {label + ':':<44} {len(packs(e.trials, pack)):>4} pods, about {_duration(e.wall_seconds(pack))} of "
            f"wall time, {e.gpu_hours(pack):.2f} GPU-hours"
        )
    click.echo("(training steps only: validation passes, ingest, evaluate and the report come on top)")
    if suite["until_decided"]:
        from optbench.components.question.suites import round_seeds

        added = len(round_seeds(suite))
        per_variant = {t["variant"]: t["compute_seconds"] for t in e.trials}
        click.echo(
            f"seeds until decided: up to {added} more round(s) of one seed each, at most {added * len(per_variant)} "
            f"more trials and {_duration(added * sum(per_variant.values()))} more of training steps if nothing is "
            f"decided before {suite['max_seeds']} seeds"
        )


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


COMMANDS = (run, suites_command, optimizers, estimate_command)
