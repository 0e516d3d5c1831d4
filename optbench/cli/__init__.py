"""The `optbench` command line: one module per command group.

run.py        run, suites, optimizers   a comparison on this machine
report.py     report --compare          trends across finished runs
cluster.py    compile, submit, schedule, schedules, runs
artifacts.py  artifacts ls|get|open     a run's files, local or in Cloud Storage
images.py     images                    build the container images
config.py     the options the commands share and the cluster --config file
"""

from __future__ import annotations

import logging
import os
import sys

import click

from optbench.cli import artifacts, cluster, images, report, run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show every log line of every step.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Compare optimizers on MNIST through a Kubeflow pipeline (Beam -> Keras -> TFMA -> report)."""
    ctx.obj = {"verbose": verbose}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, whichever command loads it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


for _group in (run, report, cluster, artifacts, images):
    for _command in _group.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    sys.exit(main())
