"""`optbench artifacts ls|get|open RUN`: a run's report and files, from a local run folder or from Cloud Storage."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from optbench.cli.config import ARTIFACT_OPTIONS, apply, config_option, friendly


@click.group()
@config_option
@apply(*ARTIFACT_OPTIONS)
@click.pass_context
def artifacts(ctx: click.Context, artifacts_root: str) -> None:
    """A run's report and files, from a local run folder or from Google Cloud Storage.

    RUN is a run folder, a gs://BUCKET/PREFIX/<suite>/<run_id> URI, or a run id under --root.
    """
    ctx.obj = {**(ctx.obj or {}), "root": artifacts_root}


def _select(files: dict[str, int], prefixes: tuple[str, ...]) -> list[str]:
    from optbench.storage import ArtifactsError

    chosen = [
        n
        for n in files
        if not prefixes or any(n == p.rstrip("/") or n.startswith(p.rstrip("/") + "/") for p in prefixes)
    ]
    if not chosen:
        tops = ", ".join(sorted({n.split("/")[0] for n in files}))
        raise ArtifactsError(f"nothing matches {', '.join(prefixes)}; the run has {tops}")
    return sorted(chosen)


@artifacts.command("ls")
@click.argument("run")
@click.pass_context
@friendly
def artifacts_ls(ctx: click.Context, run: str) -> None:
    """The run's best optimizer and every file with its size."""
    import json

    from optbench.layout import REPORT_COMPARISON
    from optbench.storage import best_variant, open_run

    found = open_run(run, ctx.obj["root"])
    files = found.files()
    best = best_variant(json.loads(found.read_bytes(REPORT_COMPARISON))) if REPORT_COMPARISON in files else None
    click.echo(f"run {found.run_id}  {found.uri}")
    click.echo(f"best: {best[0]} (test accuracy {best[1]:.4f})" if best else "best: -")
    for name in sorted(files):
        click.echo(f"{files[name]:>12,}  {name}")
    click.echo(f"{sum(files.values()):>12,}  {len(files)} files")


@artifacts.command("get")
@click.argument("run")
@click.argument("paths", nargs=-1)
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Files go to DEST/<run_id>/<path>.",
)
@click.pass_context
@friendly
def artifacts_get(ctx: click.Context, run: str, paths: tuple[str, ...], dest: Path) -> None:
    """Download the run's files (all, or those under PATHS such as report or models/adam.s0), checksummed."""
    from optbench.storage import open_run

    found = open_run(run, ctx.obj["root"])
    names = _select(found.files(), paths)
    target = dest / found.run_id
    found.download(names, target)
    click.echo(f"{len(names)} files -> {target}")


@artifacts.command("open")
@click.argument("run")
@click.option("--no-browser", is_flag=True, help="Only fetch the report and print its path.")
@click.pass_context
@friendly
def artifacts_open(ctx: click.Context, run: str, no_browser: bool) -> None:
    """Fetch the run's report and open report.html in the browser."""
    from optbench.components.shared.files import default_cache_dir
    from optbench.layout import REPORT_DIR, REPORT_PAGE
    from optbench.storage import open_run

    found = open_run(run, ctx.obj["root"])
    target = default_cache_dir() / "reports" / found.run_id
    found.download(_select(found.files(), (REPORT_DIR,)), target)
    html = target / REPORT_PAGE
    click.echo(str(html))
    if not no_browser:
        webbrowser.open(html.resolve().as_uri())


COMMANDS = [artifacts]
