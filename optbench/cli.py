"""The `optbench` command line."""
from __future__ import annotations

import logging
import sys

import click

from components.plan import suites
from components.train.optimizers import REGISTRY
from optbench import options
from optbench.cli_report import report
from optbench.cluster_cli import COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show every log line of every step.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Compare optimizers on MNIST through a Kubeflow pipeline (Beam -> Keras -> TFMA -> report)."""
    ctx.obj = {"verbose": verbose}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


@main.command()
@options.apply(*options.SUITE_OPTIONS)
@click.option("--output", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Runs are written to OUTPUT/<run_id>/.")
@click.option("--beam-runner", default=None, help="Beam runner for ingest and evaluate (default: in-process).")
@click.option("--beam-arg", "beam_args", multiple=True, help="Extra Beam pipeline option, e.g. --beam-arg=--region=x.")
@click.option("--resume", "resume_id", metavar="RUN_ID", default=None,
              help="Finish an interrupted run in OUTPUT: its settings, only its unfinished tasks.")
@click.option("--publish", metavar="gs://BUCKET/PREFIX", default=None,
              help="Upload the finished run to Cloud Storage (gs://BUCKET/PREFIX/<suite>/<run_id>/).")
@click.pass_context
def run(ctx: click.Context, beam_runner: str | None, beam_args: tuple[str, ...], output: str,
        resume_id: str | None, publish: str | None, **opts) -> None:
    """Run the whole comparison locally with kfp.local and print the table."""
    from components.ingest.idx import DataError
    from components.report.comparison import format_table
    from optbench.local_run import RunFailed, resume_local, run_local
    from optbench.storage import PublishError, publish_run

    beam = ([f"--runner={beam_runner}"] if beam_runner else []) + list(beam_args)
    try:
        if resume_id:
            result = resume_local(resume_id, output, verbose=ctx.obj["verbose"])
        else:
            result = run_local(options.run_config(opts, beam), output, verbose=ctx.obj["verbose"])
    except (DataError, ValueError, RunFailed) as e:
        raise click.ClickException(str(e)) from None
    click.echo(format_table(result.rows))
    click.echo(f"\nrun {result.run_id} finished in {result.seconds:.0f}s")
    click.echo(f"report: {result.report_dir / 'report.html'}")
    if publish:
        try:
            click.echo(f"published: {publish_run(result.run_dir, publish, suite=result.suite)}")
        except PublishError as e:
            raise click.ClickException(f"the run succeeded but publishing failed: {e}") from None


@main.command("suites")
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


@main.command()
def optimizers() -> None:
    """List the optimizers and their defaults."""
    for spec in REGISTRY.values():
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        click.echo(f"{spec.name:<10} {spec.class_name}({params})  {spec.summary}")


for _command in (report, *COMMANDS):
    main.add_command(_command)

if __name__ == "__main__":
    sys.exit(main())
