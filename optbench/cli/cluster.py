"""The cluster commands: compile, submit, schedule, schedules, runs.

Their options, and the --config file that sets their defaults, are in
optbench/cli/config.py.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from optbench.cli.config import (
    API_OPTIONS,
    CLUSTER_NOTIFY_OPTION,
    CLUSTER_OPTIONS,
    RUN_OPTIONS,
    SUITE_OPTIONS,
    apply,
    config_option,
    friendly,
    run_config,
)
from optbench.components.shared.untrusted import plain_name, printable
from optbench.kfp_api import Connection, Pipelines, RunSummary, check_cron

# optbench.storage (google-cloud-storage) and kfp load only in the commands that use them:
# `optbench --help` and the local commands should not wait for them.

RUNNER = "Kubeflow Pipelines"


def _cron(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_cron(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _plain_id(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An id from the command line goes into a request's URL: it must look like one (KFP's are UUIDs)."""
    try:
        return plain_name(value, (param.name or "id").replace("_", " "))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _suite(opts: dict) -> dict:
    """The suite with the overrides, validated exactly as `optbench run` validates it."""
    return run_config(opts).resolve()


def _compile(opts: dict, output: Path) -> dict:
    """Compile the pipeline for the cluster into `output`; returns the form's values (the run's parameters).

    The report calls a cluster run by KFP's run id, which every run of a schedule has of its own.
    """
    from optbench.components.question.form import to_form
    from optbench.pipelines.cluster import ClusterConfig, Dataflow, compile_pipeline

    if not opts["image"]:
        raise click.UsageError(
            "no image: pass --image (and --gpu-image) or set image: in --config; `make images` builds and pushes them"
        )
    config = ClusterConfig(
        image=opts["image"],
        gpu_image=opts["gpu_image"],
        gpus=opts["gpus"],
        gpu_type=opts["gpu_type"],
        train_retries=opts["train_retries"],
        notify_secret=opts["notify_secret"],
    )
    dataflow = {
        k: opts[f"dataflow_{k}"]
        for k in ("project", "region", "temp_location", "image", "machine_type", "service_account")
    }
    beam_args = list(opts["beam_args"])
    if any(dataflow.values()):
        missing = [
            f"--dataflow-{k.replace('_', '-')}"
            for k in ("project", "region", "temp_location", "image")
            if not dataflow[k]
        ]
        if missing:
            raise click.UsageError(f"Dataflow needs {', '.join(missing)} too")
        beam_args = Dataflow(**dataflow).beam_args() + beam_args
    from optbench.components.question.suites import round_seeds

    config_of_run = run_config(opts)
    form = to_form(config_of_run)
    rounds = len(round_seeds(config_of_run.resolve()))  # the rounds this question may add: the pipeline holds them
    compile_pipeline(config, form, output, beam_args=beam_args, runner=RUNNER, rounds=rounds)
    return form


def _api(opts: dict) -> Pipelines:
    return Connection(
        host=opts["host"],
        token=opts["token"],
        iap_client_id=opts["iap_client_id"],
        other_client_id=opts["other_client_id"],
        other_client_secret=opts["other_client_secret"],
        namespace=opts["namespace"],
        ssl_ca_cert=opts["ca_cert"],
    ).pipelines()


def _submission(opts: dict, default_name: Callable[[dict], str], send: Callable[[Path, dict, dict, str], None]) -> None:
    """Compile into --output or a temporary file, then `send(package, suite, arguments, name)`."""
    suite = _suite(opts)
    name = default_name(suite)
    with tempfile.TemporaryDirectory(prefix="optbench-") as tmp:
        package = opts["output"] or Path(tmp) / "pipeline.yaml"
        send(package, suite, _compile(opts, package), name)


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    s = int(delta.total_seconds())
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _best(run: RunSummary, default_root: str | None, storage_client: Callable[[], Any]) -> str:
    """The best variant and its test accuracy, read from the report the run wrote under its pipeline root.

    '?' when the report cannot be read (no credentials, no such bucket, a root or a report that is not one
    - both come from outside): the listing still shows.
    """
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    from optbench.pipelines.pipeline import PIPELINE_NAME
    from optbench.storage import ArtifactsError, best_variant, cluster_comparison

    root = run.pipeline_root or default_root
    if run.state != "SUCCEEDED" or not root:
        return "-"
    try:
        rows = cluster_comparison(root, PIPELINE_NAME, run.run_id, client=storage_client())
        best = best_variant(rows) if rows else None
    except (ArtifactsError, ValueError, GoogleAPIError, GoogleAuthError) as e:
        click.echo(printable(f"warning: cannot read run {run.run_id}'s report under {root}: {e}"), err=True)
        return "?"
    return printable(f"{best[0]} {best[1]:.4f}") if best and best[1] is not None else "-"


def _echo_progress(now: RunSummary, before: RunSummary | None) -> None:
    if before is None or now.state != before.state:
        click.echo(f"run {now.run_id}: {now.state} ({_duration(now.duration())})")
    old = dict(before.tasks) if before else {}
    for task, state in now.tasks:
        if old.get(task) != state:
            click.echo(f"  {task}: {state}")


@click.command("compile")
@config_option
@apply(*SUITE_OPTIONS, *CLUSTER_OPTIONS)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("pipeline.yaml"), show_default=True
)
@friendly
def compile_command(**opts: Any) -> None:
    """Compile the pipeline to KFP IR YAML (upload it in the KFP UI, or `optbench submit` it).

    The pipeline's parameters are a form (the suite and its overrides), whose defaults are this command's
    options; images, GPUs, resources and Beam's runner are fixed here, at compile time.
    """
    from optbench.components.question.suites import expand

    suite = _suite(opts)
    _compile(opts, opts["output"])
    training = "CPU only" if opts["gpus"] == 0 else f"{opts['gpus']} x {opts['gpu_type']} per trial"
    rounds = f", seeds until decided up to {suite['max_seeds']}" if suite["until_decided"] else ""
    click.echo(f"{opts['output']}: suite {suite['name']}, {len(expand(suite))} trials{rounds}, {training}")


@click.command()
@config_option
@apply(*SUITE_OPTIONS, *CLUSTER_OPTIONS, CLUSTER_NOTIFY_OPTION, *API_OPTIONS, *RUN_OPTIONS)
@click.option("--run-name", help="Run name; default <suite>-<UTC time>.")
@click.option("--wait", is_flag=True, help="Follow the run to its end; exit non-zero unless it succeeded.")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    default=6 * 3600,
    show_default=True,
    help="With --wait: give up following after this many seconds (the run goes on).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0),
    default=15,
    show_default=True,
    help="With --wait: seconds between status checks.",
)
@friendly
def submit(**opts: Any) -> None:
    """Compile the suite's pipeline and start a run on the cluster."""

    def default_name(suite: dict) -> str:
        return opts["run_name"] or f"{suite['name']}-{datetime.now(UTC):%Y%m%d-%H%M%S}"

    def send(package: Path, suite: dict, arguments: dict, name: str) -> None:
        api = _api(opts)
        experiment = opts["experiment"] or f"optbench-{suite['name']}"
        run = api.submit(
            package,
            arguments,
            experiment=experiment,
            run_name=name,
            pipeline_root=opts["pipeline_root"],
            service_account=opts["service_account"],
        )
        click.echo(f"submitted run {run.run_id} ({name}) to experiment {experiment}")
        if not opts["wait"]:
            return
        final = api.follow(
            run.run_id, poll_seconds=opts["poll_seconds"], timeout=opts["timeout"], on_change=_echo_progress
        )
        if final.state != "SUCCEEDED":
            raise click.ClickException(
                f"run {final.run_id} ended {final.state}" + (f": {final.error}" if final.error else "")
            )
        click.echo(f"best: {_best(final, opts['pipeline_root'], _storage_client)}")

    _submission(opts, default_name, send)


@click.command()
@config_option
@click.option(
    "--cron",
    required=True,
    callback=_cron,
    help="KFP cron, six fields: second minute hour day-of-month month day-of-week ('0 0 3 * * *').",
)
@click.option("--name", help="Schedule name; default '<suite> @ <cron>'.")
@apply(*SUITE_OPTIONS, *CLUSTER_OPTIONS, CLUSTER_NOTIFY_OPTION, *API_OPTIONS, *RUN_OPTIONS)
@friendly
def schedule(**opts: Any) -> None:
    """Run the suite's comparison on a schedule: one run at a time, missed runs not caught up."""

    def default_name(suite: dict) -> str:
        return opts["name"] or f"{suite['name']} @ {opts['cron']}"

    def send(package: Path, suite: dict, arguments: dict, name: str) -> None:
        experiment = opts["experiment"] or f"optbench-{suite['name']}"
        job = _api(opts).schedule(
            package,
            arguments,
            cron=opts["cron"],
            experiment=experiment,
            name=name,
            pipeline_root=opts["pipeline_root"],
            service_account=opts["service_account"],
        )
        click.echo(
            f"scheduled {job.schedule_id} ({job.name}): cron '{job.cron}', "
            f"max concurrency {job.max_concurrency}, catch-up {'off' if job.no_catchup else 'on'}"
        )

    _submission(opts, default_name, send)


@click.group(invoke_without_command=True)
@config_option
@apply(*API_OPTIONS)
@click.pass_context
@friendly
def schedules(ctx: click.Context, **opts: Any) -> None:
    """List the recurring runs (the default), or pause, resume or delete one."""
    ctx.obj = {**(ctx.obj or {}), "api": lambda: _api(opts)}
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_schedules)


@schedules.command("list")
@click.pass_context
@friendly
def list_schedules(ctx: click.Context) -> None:
    """Every recurring run: id, state, cron, name."""
    jobs = ctx.obj["api"]().schedules()
    if not jobs:
        click.echo("no schedules")
    for job in jobs:
        click.echo(f"{job.schedule_id}  {'enabled' if job.enabled else 'paused':<8} {job.cron or '-':<16} {job.name}")


def _schedule_action(name: str, doc: str, method: str, done: str) -> None:
    @click.argument("schedule_id", callback=_plain_id)
    @click.pass_context
    @friendly
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
@click.option(
    "--root",
    "history_root",
    default="runs",
    show_default=True,
    help="Where the runs record themselves: a folder of runs (`optbench run --output`) or gs://BUCKET/PREFIX "
    "(a cluster's --history-root); `history_root:` in --config sets it.",
)
@click.option("--suite", help="Only this suite's runs.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=10, show_default=True, help="Runs shown per suite (--live: in all)."
)
@click.option(
    "--live",
    is_flag=True,
    help="List the KFP API's recent runs instead: state, duration and best optimizer (takes the API options and "
    "--pipeline-root).",
)
@apply(*API_OPTIONS)
@click.option("--pipeline-root", help="With --live: gs:// root to find reports of runs that do not name theirs.")
@click.option(
    "--prune",
    is_flag=True,
    help="Free the space of older runs: of each suite's runs under --root beyond the newest --keep, delete the "
    "bulk (in a folder of runs: pipeline/, cache/, the report's TensorBoard copy; under a gs:// prefix of published "
    "runs: data/, eval/, models/, that copy), keeping run.json and the report that histories and trends read. Says "
    "what it would delete; --yes deletes it.",
)
@click.option(
    "--keep", type=int, default=10, show_default=True, help="With --prune: the newest runs of each suite kept whole."
)
@click.option("--yes", is_flag=True, help="With --prune: delete what it lists.")
@friendly
def runs(**opts: Any) -> None:
    """Each recurring comparison (a suite) and its last runs: when, the winner, and what changed since the run
    before it, as each run's report decided and recorded it (report/record.json under --root).

    `optbench runs --live` lists the KFP API's recent runs instead; `--prune` frees the space of older runs.
    """
    if opts["live"]:
        _live_runs(opts)
        return
    if opts["prune"]:
        _prune(opts["history_root"] or "runs", opts["keep"], opts["yes"])
        return
    from optbench.components.history.records import read_records

    root = opts["history_root"] or "runs"
    if "://" not in root and not Path(root).is_dir():
        raise click.ClickException(f"{root}: no such folder of runs (give --root, or history_root: in --config)")
    records, notes = read_records(root, suite=opts["suite"], limit=opts["limit"])
    if not records:
        click.echo(
            f"no runs recorded under {printable(root)}" + (f" for suite {opts['suite']}" if opts["suite"] else "")
        )
    by_suite: dict[str, list[dict]] = {}
    record: dict | None
    for record in records:
        by_suite.setdefault(record["suite"], []).append(record)
    for suite, recorded in sorted(by_suite.items()):
        click.echo(f"suite {suite}: the last {len(recorded)} run(s) under {printable(root)}")
        rows = [
            (f"{datetime.fromisoformat(r['finished_at']).astimezone(UTC):%Y-%m-%d %H:%M}", r["run_id"], *_answer(r))
            for r in recorded
        ]
        header = ("FINISHED (UTC)", "RUN ID", "WINNER (TEST ACC)", "SINCE THE RUN BEFORE")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
        for row, record in zip([header, *rows], [None, *recorded]):
            click.echo("  " + "  ".join([*(v.ljust(w) for v, w in zip(row, widths)), row[-1]]).rstrip())
            for flag in ((record or {}).get("changes") or {}).get("flags") or []:
                click.echo(f"      - {printable(flag['text'])}")
    for note in notes:
        click.echo(f"note: {note}", err=True)


def _prune(root: str, keep: int, yes: bool) -> None:
    """List what pruning `root` (a folder of runs, or a gs:// prefix of published ones) deletes; with `yes`,
    delete it."""
    from optbench.retention import BULK, PUBLISHED_BULK, plan_prune, plan_prune_published, prune, prune_published

    if root.startswith("gs://"):
        published, notes = plan_prune_published(root, keep)
        items = [(p.run.suite, p.run.run_id, _parts(p.names, PUBLISHED_BULK), p.size) for p in published]
    else:
        plan, notes = plan_prune(Path(root), keep)
        items = [
            (p.suite, p.run_dir.name, _parts([str(q.relative_to(p.run_dir)) for q in p.paths], BULK), p.size)
            for p in plan
        ]
    verb = "deleting" if yes else "would delete"
    click.echo(
        f"{verb} {sum(item[-1] for item in items) / 1e6:,.1f} MB from {len(items)} run(s) under {printable(root)} "
        f"(the newest {keep} of each suite stay whole; every run's run.json and report stay)"
    )
    for suite, run_id, parts, size in items:
        click.echo(f"  {printable(suite)}  {run_id}  {parts}  {size / 1e6:,.1f} MB")
    if yes:
        if root.startswith("gs://"):
            freed = prune_published(published)
        else:
            freed, busy = prune(plan)
            notes += busy
        click.echo(f"freed {freed / 1e6:,.1f} MB")
    elif items:
        click.echo("run again with --yes to delete it")
    for note in notes:
        click.echo(f"note: {printable(note)}", err=True)


def _parts(names: list[str], bulk: tuple[str, ...]) -> str:
    """The bulk folders a prune deletes of one run, given the paths or object names it deletes: `pipeline/, cache/`."""
    return ", ".join(f"{b}/" for b in bulk if any(n == b or n.startswith(f"{b}/") for n in names))


def _answer(record: dict) -> tuple[str, str]:
    """(the verdict's answer and its test accuracy, whether it changed since the run before), as recorded."""
    winner = record["winner"]
    accuracy = next((r["test_accuracy"] for r in record["rows"] if r["optimizer"] == winner["optimizer"]), None)
    shown = (
        "-"
        if winner["optimizer"] is None
        else f"{winner['optimizer']} {'-' if accuracy is None else f'{accuracy:.4f}'}"
    )
    answer = shown if winner["significant"] else f"none (best: {shown})" if winner["optimizer"] else "none"
    changes = record["changes"]
    if changes is None:
        said = "-"
    elif changes.get("since") is None:
        said = "first run"
    else:
        flags = changes["flags"]
        said = f"changed ({len(flags)}):" if flags else "same answer"
    return printable(answer), said


def _live_runs(opts: dict) -> None:
    """The KFP API's recent runs: state, duration, and the best optimizer of those that succeeded."""
    client = functools.cache(_storage_client)
    rows = [
        (
            r.run_id,
            r.name,
            r.state,
            f"{r.created_at:%Y-%m-%d %H:%M}" if r.created_at else "-",
            _duration(r.duration()),
            _best(r, opts["pipeline_root"], client),
        )
        for r in _api(opts).recent_runs(opts["limit"])
    ]
    if not rows:
        click.echo("no runs")
        return
    header = ("RUN ID", "NAME", "STATE", "CREATED (UTC)", "DURATION", "BEST (TEST ACC)")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


COMMANDS: list[click.Command] = [compile_command, submit, schedule, schedules, runs]
