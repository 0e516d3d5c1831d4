"""`optbench report --compare RUN [RUN ...]`: a trend report that lines up several finished runs."""

from __future__ import annotations

from pathlib import Path

import click

from optbench.cli.config import friendly


def resolve_run(run: str, runs_dir: str) -> str:
    """A run folder as given, or a run id under `runs_dir`; the error names both places looked at."""
    from optbench.components.shared.untrusted import UntrustedInput, plain_name

    if Path(run).is_dir():
        return run
    try:
        plain_name(run, "run id")
    except UntrustedInput as e:
        raise click.BadParameter(f"{run!r} is neither a run folder nor a run id: {e}", param_hint="RUN") from None
    if (Path(runs_dir) / run).is_dir():
        return str(Path(runs_dir) / run)
    raise click.BadParameter(f"{run!r} is neither a run folder nor a run id under {runs_dir}/", param_hint="RUN")


@click.command("report")
@click.option("--compare", is_flag=True, help="Line up the given runs: test accuracy and time per optimizer per run.")
@click.argument("runs", nargs=-1, metavar="RUN [RUN ...]")
@click.option(
    "--runs-dir",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where run ids are looked up.",
)
@click.option(
    "--output",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for trend.html/.md/.json/.png  [default: RUNS_DIR/trend]",
)
@friendly
def report(compare: bool, runs: tuple[str, ...], runs_dir: str, output: str | None) -> None:
    """Build a trend report across runs (folders, or run ids under --runs-dir), e.g. a suite's scheduled runs."""
    # Imported here: matplotlib and scipy would slow down every other optbench command.
    from optbench.components.history.trends import TREND_HTML, build_trend_report, format_trend_table
    from optbench.layout import read_run
    from optbench.ownership import describe, holder

    if not compare:
        raise click.UsageError("give --compare and the runs to line up: optbench report --compare RUN RUN ...")
    if len(runs) < 2:
        raise click.UsageError("a trend needs at least two runs")
    output = output or str(Path(runs_dir) / "trend")
    for folder in (Path(output).resolve(), *Path(output).resolve().parents):  # never into a run being written
        if (writer := holder(folder)) is not None:
            raise click.ClickException(
                f"{output} is inside run folder {folder}, still being written by {describe(writer)}"
            )
    dirs = [resolve_run(r, runs_dir) for r in runs]
    try:
        data = build_trend_report([read_run(d) for d in dirs], output)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    click.echo(format_trend_table(data))
    click.echo(f"\ntrend report: {Path(output) / TREND_HTML}")


COMMANDS = [report]
