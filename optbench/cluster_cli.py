"""The cluster half of the `optbench` command: compile, submit, schedule, schedules, runs, artifacts.

Every setting can come from the command line or from a YAML file given with
`--config` (or $OPTBENCH_CLUSTER_CONFIG), whose keys are the options' names
with underscores (`image:`, `gpu_image:`, `host:`, `pipeline_root:`, ...);
`terraform output -raw optbench_config` writes one for the infra in infra/.
The command line wins over the file. Exported as COMMANDS for optbench.cli.
"""
from __future__ import annotations

import functools
import os
import tempfile
import webbrowser
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import click
import yaml

from optbench import options
from optbench.kfp_api import ApiError, Connection, Pipelines, RunSummary, check_cron
from optbench.options import run_config

# optbench.storage (google-cloud-storage) and kfp load only in the commands that use them:
# `optbench --help` and the local commands should not wait for them.

CONFIG_ENV = "OPTBENCH_CLUSTER_CONFIG"
RUNNER = "Kubeflow Pipelines"


def _cron(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_cron(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Eager: turn the YAML file into click's default_map, so each option falls back to its key in the file."""
    if not value:
        return
    try:
        data = yaml.safe_load(Path(value).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise click.BadParameter(str(e)) from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: a YAML mapping of option names to values")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise click.BadParameter(f"{value}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(CONFIG_KEYS)}")
    own = {p.name for p in ctx.command.params}
    ctx.default_map = {**(ctx.default_map or {}), **{k: v for k, v in data.items() if k in own}}


config_option = click.option("--config", type=click.Path(exists=True, dir_okay=False), envvar=CONFIG_ENV,
                             callback=_load_config, is_eager=True, expose_value=False,
                             help=f"YAML file of option defaults (keys: option names with _). [env: {CONFIG_ENV}]")

CLUSTER_OPTIONS = (
    click.option("--image", help="CPU image for ingest, evaluate and report, pinned by tag or digest."),
    click.option("--gpu-image", help="GPU image for training (TensorFlow with CUDA)."),
    click.option("--gpus", type=click.IntRange(min=0), default=1, show_default=True,
                 help="GPUs per training task; 0 compiles a CPU-only pipeline."),
    click.option("--gpu-type", default="nvidia-tesla-t4", show_default=True,
                 help="GKE accelerator type of the GPU pool (node label cloud.google.com/gke-accelerator)."),
    click.option("--train-retries", type=click.IntRange(min=0), default=2, show_default=True,
                 help="Retries of a failed training task (e.g. a preempted GPU node)."),
    click.option("--dataflow-project", help="Run ingest and evaluate's Beam on Dataflow in this project."),
    click.option("--dataflow-region", help="Dataflow region, e.g. us-central1."),
    click.option("--dataflow-temp-location", help="gs:// folder for Dataflow's temporary files."),
    click.option("--dataflow-machine-type", help="Dataflow worker machine type, e.g. n2-standard-4."),
    click.option("--dataflow-service-account", help="Service account the Dataflow workers run as."),
    click.option("--beam-arg", "beam_args", multiple=True,
                 help="Extra Beam option, e.g. --beam-arg=--max_num_workers=4."),
)
API_OPTIONS = (
    click.option("--host", help="KFP API endpoint. [env: KF_PIPELINES_ENDPOINT]"),
    click.option("--token", envvar="KF_PIPELINES_TOKEN", show_envvar=True,
                 help="Bearer token, e.g. $(gcloud auth print-access-token)."),
    click.option("--iap-client-id", help="OAuth client id of an Identity-Aware Proxy in front of KFP."),
    click.option("--other-client-id", help="Desktop OAuth client id, to sign in through IAP."),
    click.option("--other-client-secret", help="Desktop OAuth client secret, to sign in through IAP."),
    click.option("--namespace", help="KFP namespace (multi-user deployments)."),
    click.option("--ca-cert", help="CA certificate file for a TLS endpoint with a private CA."),
)
RUN_OPTIONS = (
    click.option("--experiment", help="KFP experiment; default optbench-<suite>."),
    click.option("--pipeline-root", help="gs:// root of the run's artifacts; default: the cluster's."),
    click.option("--service-account", help="Kubernetes service account the run's pods use; default: the cluster's."),
    click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Also keep the compiled YAML here."),
)
ARTIFACT_OPTIONS = (
    click.option("--root", "artifacts_root", default="runs", show_default=True,
                 help="Where run ids are looked up: a local folder or gs://BUCKET/PREFIX."),
)


def _names(options: tuple[Callable, ...]) -> list[str]:
    def probe() -> None: ...
    for option in options:
        option(probe)
    return [p.name for p in probe.__click_params__]


# What a --config file may set: the cluster's settings. Not what one comparison asks for (suite and its
# overrides, output file), and no secrets (a config file gets shared; tokens come from the environment).
CONFIG_KEYS = sorted(set(_names(options.SUITE_OPTIONS + CLUSTER_OPTIONS + API_OPTIONS + RUN_OPTIONS + ARTIFACT_OPTIONS))
                     - {"suite", "optimizers", "epochs", "seeds", "mixed_precision", "xla", "output", "token",
                        "other_client_secret"})


def _friendly(f: Callable) -> Callable:
    """Turn the errors a user can fix into one line instead of a traceback."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kfp_server_api import ApiException
        from urllib3.exceptions import HTTPError

        from components.plan.suites import SuiteError
        from optbench.storage import ArtifactsError, PublishError

        try:
            return f(*args, **kwargs)
        except (ValueError, SuiteError, ApiError, ArtifactsError, PublishError, TimeoutError) as e:
            raise click.ClickException(str(e)) from None
        except ApiException as e:
            raise click.ClickException(f"KFP API answered {e.status} {e.reason}: {e.body}") from None
        except HTTPError as e:
            raise click.ClickException(f"cannot reach the KFP API: {e}") from None
    return wrapper


def _suite(opts: dict) -> dict:
    """The suite with the overrides, validated exactly as `optbench run` validates it."""
    return run_config(opts).resolve()


def _compile(opts: dict, suite: dict, output: Path, run_id: str = "") -> dict:
    """Compile `suite`'s pipeline for the cluster into `output`; returns the pipeline's arguments.

    `run_id` is what the report calls the run: the run's or the schedule's name, as the KFP UI
    shows it (the compiled file alone belongs to no run yet).
    """
    from optbench.local_run import pipeline_arguments_for
    from pipelines.cluster import ClusterConfig, Dataflow, compile_pipeline

    if not opts["image"]:
        raise click.UsageError("no image: pass --image (and --gpu-image) or set image: in --config; "
                               "`make images` builds and pushes them")
    config = ClusterConfig(image=opts["image"], gpu_image=opts["gpu_image"], gpus=opts["gpus"],
                           gpu_type=opts["gpu_type"], train_retries=opts["train_retries"])
    dataflow = {k: opts[f"dataflow_{k}"] for k in ("project", "region", "temp_location", "machine_type",
                                                   "service_account")}
    beam_args = list(opts["beam_args"])
    if any(dataflow.values()):
        missing = [f"--dataflow-{k.replace('_', '-')}" for k in ("project", "region", "temp_location")
                   if not dataflow[k]]
        if missing:
            raise click.UsageError(f"Dataflow needs {', '.join(missing)} too")
        beam_args = Dataflow(**dataflow).beam_args(config.image) + beam_args
    arguments = pipeline_arguments_for(suite, run_id=run_id, data_source=opts["data_source"],
                                       validation_fraction=opts["validation_fraction"],
                                       train_limit=opts["train_limit"], test_limit=opts["test_limit"],
                                       beam_args=beam_args, train_threads=config.train_threads,
                                       mixed_precision=opts["mixed_precision"], xla=opts["xla"],
                                       runner=RUNNER)
    compile_pipeline(config, arguments, output)
    return arguments


def _api(opts: dict) -> Pipelines:
    return Pipelines(Connection(host=opts["host"], token=opts["token"], iap_client_id=opts["iap_client_id"],
                                other_client_id=opts["other_client_id"],
                                other_client_secret=opts["other_client_secret"], namespace=opts["namespace"],
                                ssl_ca_cert=opts["ca_cert"]).client())


def _submission(opts: dict, default_name: Callable[[dict], str],
                send: Callable[[Path, dict, dict, str], None]) -> None:
    """Compile into --output or a temporary file, then `send(package, suite, arguments, name)`."""
    suite = _suite(opts)
    name = default_name(suite)
    with tempfile.TemporaryDirectory(prefix="optbench-") as tmp:
        package = opts["output"] or Path(tmp) / "pipeline.yaml"
        send(package, suite, _compile(opts, suite, package, run_id=name), name)


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    s = int(delta.total_seconds())
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _best(run: RunSummary, default_root: str | None, storage_client: Callable[[], Any]) -> str:
    """The best variant and its test accuracy, read from the report the run wrote under its pipeline root.

    '?' when the bucket cannot be read (no credentials, no such bucket): the listing still shows.
    """
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    from optbench.storage import best_variant, cluster_comparison
    from pipelines.pipeline import PIPELINE_NAME

    root = run.pipeline_root or default_root
    if run.state != "SUCCEEDED" or not root:
        return "-"
    try:
        rows = cluster_comparison(root, PIPELINE_NAME, run.run_id, client=storage_client())
    except (GoogleAPIError, GoogleAuthError) as e:
        click.echo(f"warning: cannot read run {run.run_id}'s report under {root}: {e}", err=True)
        return "?"
    best = best_variant(rows) if rows else None
    return f"{best[0]} {best[1]:.4f}" if best else "-"


def _echo_progress(now: RunSummary, before: RunSummary | None) -> None:
    if before is None or now.state != before.state:
        click.echo(f"run {now.run_id}: {now.state} ({_duration(now.duration())})")
    old = dict(before.tasks) if before else {}
    for task, state in now.tasks:
        if old.get(task) != state:
            click.echo(f"  {task}: {state}")


@click.command("compile")
@config_option
@options.apply(*options.SUITE_OPTIONS, *CLUSTER_OPTIONS)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("pipeline.yaml"),
              show_default=True)
@_friendly
def compile_command(**opts: Any) -> None:
    """Compile the pipeline to KFP IR YAML (upload it in the KFP UI, or `optbench submit` it).

    The suite's trials and settings become the parameters' defaults; images, GPUs,
    resources and Beam's runner are fixed here, at compile time.
    """
    suite = _suite(opts)
    arguments = _compile(opts, suite, opts["output"])
    training = "CPU only" if opts["gpus"] == 0 else f"{opts['gpus']} x {opts['gpu_type']} per trial"
    click.echo(f"{opts['output']}: suite {suite['name']}, {len(arguments['trials'])} trials, {training}")


@click.command()
@config_option
@options.apply(*options.SUITE_OPTIONS, *CLUSTER_OPTIONS, *API_OPTIONS, *RUN_OPTIONS)
@click.option("--run-name", help="Run name; default <suite>-<UTC time>.")
@click.option("--wait", is_flag=True, help="Follow the run to its end; exit non-zero unless it succeeded.")
@click.option("--timeout", type=click.IntRange(min=1), default=6 * 3600, show_default=True,
              help="With --wait: give up following after this many seconds (the run goes on).")
@click.option("--poll-seconds", type=click.FloatRange(min=0), default=15, show_default=True,
              help="With --wait: seconds between status checks.")
@_friendly
def submit(**opts: Any) -> None:
    """Compile the suite's pipeline and start a run on the cluster."""
    def default_name(suite: dict) -> str:
        return opts["run_name"] or f"{suite['name']}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"

    def send(package: Path, suite: dict, arguments: dict, name: str) -> None:
        api = _api(opts)
        experiment = opts["experiment"] or f"optbench-{suite['name']}"
        run = api.submit(package, arguments, experiment=experiment, run_name=name,
                         pipeline_root=opts["pipeline_root"], service_account=opts["service_account"])
        click.echo(f"submitted run {run.run_id} ({name}) to experiment {experiment}")
        if not opts["wait"]:
            return
        final = api.follow(run.run_id, poll_seconds=opts["poll_seconds"], timeout=opts["timeout"],
                           on_change=_echo_progress)
        if final.state != "SUCCEEDED":
            raise click.ClickException(f"run {final.run_id} ended {final.state}"
                                       + (f": {final.error}" if final.error else ""))
        click.echo(f"best: {_best(final, opts['pipeline_root'], _storage_client)}")

    _submission(opts, default_name, send)


@click.command()
@config_option
@click.option("--cron", required=True, callback=_cron,
              help="KFP cron, six fields: second minute hour day-of-month month day-of-week ('0 0 3 * * *').")
@click.option("--name", help="Schedule name; default '<suite> @ <cron>'.")
@options.apply(*options.SUITE_OPTIONS, *CLUSTER_OPTIONS, *API_OPTIONS, *RUN_OPTIONS)
@_friendly
def schedule(**opts: Any) -> None:
    """Run the suite's comparison on a schedule: one run at a time, missed runs not caught up."""
    def default_name(suite: dict) -> str:
        return opts["name"] or f"{suite['name']} @ {opts['cron']}"

    def send(package: Path, suite: dict, arguments: dict, name: str) -> None:
        experiment = opts["experiment"] or f"optbench-{suite['name']}"
        job = _api(opts).schedule(package, arguments, cron=opts["cron"], experiment=experiment, name=name,
                                  pipeline_root=opts["pipeline_root"], service_account=opts["service_account"])
        click.echo(f"scheduled {job.schedule_id} ({job.name}): cron '{job.cron}', "
                   f"max concurrency {job.max_concurrency}, catch-up {'off' if job.no_catchup else 'on'}")

    _submission(opts, default_name, send)


@click.group(invoke_without_command=True)
@config_option
@options.apply(*API_OPTIONS)
@click.pass_context
@_friendly
def schedules(ctx: click.Context, **opts: Any) -> None:
    """List the recurring runs (the default), or pause, resume or delete one."""
    ctx.obj = {**(ctx.obj or {}), "api": lambda: _api(opts)}
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_schedules)


@schedules.command("list")
@click.pass_context
@_friendly
def list_schedules(ctx: click.Context) -> None:
    """Every recurring run: id, state, cron, name."""
    jobs = ctx.obj["api"]().schedules()
    if not jobs:
        click.echo("no schedules")
    for job in jobs:
        click.echo(f"{job.schedule_id}  {'enabled' if job.enabled else 'paused':<8} {job.cron or '-':<16} {job.name}")


def _schedule_action(name: str, doc: str, method: str, done: str) -> None:
    @click.argument("schedule_id")
    @click.pass_context
    @_friendly
    def action(ctx: click.Context, schedule_id: str) -> None:
        getattr(ctx.obj["api"](), method)(schedule_id)
        click.echo(f"{done} {schedule_id}")

    action.__doc__ = doc
    schedules.command(name)(action)


_schedule_action("pause", "Pause a recurring run (no new runs until resumed).", "pause", "paused")
_schedule_action("resume", "Resume a paused recurring run.", "resume", "resumed")
_schedule_action("delete", "Delete a recurring run (its past runs stay).", "delete", "deleted")


def _storage_client() -> Any:
    from google.cloud import storage

    return storage.Client()


@click.command()
@config_option
@options.apply(*API_OPTIONS)
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--pipeline-root", help="gs:// root to find reports of runs that do not name theirs.")
@_friendly
def runs(**opts: Any) -> None:
    """Recent runs: state, duration, and the best optimizer of those that succeeded."""
    client = functools.cache(_storage_client)
    rows = [(r.run_id, r.name, r.state, f"{r.created_at:%Y-%m-%d %H:%M}" if r.created_at else "-",
             _duration(r.duration()), _best(r, opts["pipeline_root"], client))
            for r in _api(opts).recent_runs(opts["limit"])]
    if not rows:
        click.echo("no runs")
        return
    header = ("RUN ID", "NAME", "STATE", "CREATED (UTC)", "DURATION", "BEST (TEST ACC)")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


@click.group()
@config_option
@options.apply(*ARTIFACT_OPTIONS)
@click.pass_context
def artifacts(ctx: click.Context, artifacts_root: str) -> None:
    """A run's report and files, from a local run folder or from Google Cloud Storage.

    RUN is a run folder, a gs://BUCKET/PREFIX/<suite>/<run_id> URI, or a run id under --root.
    """
    ctx.obj = {**(ctx.obj or {}), "root": artifacts_root}


def _select(files: dict[str, int], prefixes: tuple[str, ...]) -> list[str]:
    from optbench.storage import ArtifactsError

    chosen = [n for n in files if not prefixes or any(n == p.rstrip("/") or n.startswith(p.rstrip("/") + "/")
                                                      for p in prefixes)]
    if not chosen:
        tops = ", ".join(sorted({n.split("/")[0] for n in files}))
        raise ArtifactsError(f"nothing matches {', '.join(prefixes)}; the run has {tops}")
    return sorted(chosen)


@artifacts.command("ls")
@click.argument("run")
@click.pass_context
@_friendly
def artifacts_ls(ctx: click.Context, run: str) -> None:
    """The run's best optimizer and every file with its size."""
    import json

    from optbench.storage import COMPARISON, best_variant, open_run

    found = open_run(run, ctx.obj["root"])
    files = found.files()
    best = best_variant(json.loads(found.read_bytes(COMPARISON))) if COMPARISON in files else None
    click.echo(f"run {Path(found.uri).name}  {found.uri}")
    click.echo(f"best: {best[0]} (test accuracy {best[1]:.4f})" if best else "best: -")
    for name in sorted(files):
        click.echo(f"{files[name]:>12,}  {name}")
    click.echo(f"{sum(files.values()):>12,}  {len(files)} files")


@artifacts.command("get")
@click.argument("run")
@click.argument("paths", nargs=-1)
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Files go to DEST/<run_id>/<path>.")
@click.pass_context
@_friendly
def artifacts_get(ctx: click.Context, run: str, paths: tuple[str, ...], dest: Path) -> None:
    """Download the run's files (all, or those under PATHS such as report or models/adam.s0), checksummed."""
    from optbench.storage import open_run

    found = open_run(run, ctx.obj["root"])
    names = _select(found.files(), paths)
    target = dest / Path(found.uri).name
    found.download(names, target)
    click.echo(f"{len(names)} files -> {target}")


@artifacts.command("open")
@click.argument("run")
@click.option("--no-browser", is_flag=True, help="Only fetch the report and print its path.")
@click.pass_context
@_friendly
def artifacts_open(ctx: click.Context, run: str, no_browser: bool) -> None:
    """Fetch the run's report and open report.html in the browser."""
    from optbench.storage import open_run

    found = open_run(run, ctx.obj["root"])
    cache = Path(os.environ.get("OPTBENCH_CACHE", Path.home() / ".cache" / "optbench")) / "reports"
    target = cache / Path(found.uri).name
    found.download(_select(found.files(), ("report",)), target)
    html = target / "report" / "report.html"
    click.echo(str(html))
    if not no_browser:
        webbrowser.open(html.resolve().as_uri())


COMMANDS: list[click.Command] = [compile_command, submit, schedule, schedules, runs, artifacts]
