"""`optbench images`: build the container images (`make images` runs it)."""

from __future__ import annotations

import click

from optbench.cli.config import friendly
from optbench.images import default_ca_bundle


def _targets(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    from optbench.images import TARGETS

    targets = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if not targets or unknown:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(TARGETS)}")
    return targets


@click.command()
@click.option(
    "--targets",
    default="cpu,gpu",
    show_default=True,
    callback=_targets,
    help="Which images to build (comma-separated).",
)
@click.option(
    "--registry",
    default=None,
    help="Push to this repository, e.g. europe-docker.pkg.dev/PROJECT/optbench [default: build locally, push nothing].",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    default=default_ca_bundle,
    help="Extra CA certificates pip must trust inside the build (a TLS-intercepting proxy's) "
    "[default: $PIP_CERT, this machine's pip setting].",
)
@friendly
def images(targets: list[str], registry: str | None, ca_bundle: str | None) -> None:
    """Build the CPU and GPU images, tagged with the git commit; push them only to a named registry."""
    from optbench.images import build_images

    built = build_images(targets, registry, ca_bundle, say=lambda line: click.echo(line, err=True))
    for b in built:
        click.echo(f"{b.target:<8} {b.ref}  {b.size_bytes / 1e9:.2f} GB  built in {b.seconds:.0f}s")
    if registry:
        click.echo("pushed; pin them by digest in cluster.yaml (or pass --image, --gpu-image, --dataflow-image):")
        keys = {"cpu": "image", "gpu": "gpu_image", "dataflow": "dataflow_image"}
        for b in built:
            click.echo(f"{keys[b.target]}: {b.digest_ref or b.ref}")


COMMANDS = [images]
