"""The options the commands share, declared once, and the cluster --config file that sets their defaults.

Suite options come from RunConfig's fields, so
`optbench run` locally and `optbench submit` on a cluster accept the same
overrides and validate them the same way (RunConfig.resolve, not click).
Every cluster setting can come from the command line or from a YAML file given
with `--config` (or $OPTBENCH_CLUSTER_CONFIG), whose keys are the options'
names with underscores (`image:`, `gpu_image:`, `host:`, `pipeline_root:`,
...); `terraform output -raw optbench_config` writes one for the infra in
infra/. The command line wins over the file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import yaml

from optbench.components.question.options import RunConfig
from optbench.components.shared.notify import ENV as NOTIFY_ENV

CONFIG_ENV = "OPTBENCH_CLUSTER_CONFIG"


def apply(*decorators: Callable) -> Callable:
    """Apply click option decorators in the order listed (as --help shows them)."""

    def decorate(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return decorate


def _suite_option(f) -> Callable:
    """The click option of one RunConfig field, from its metadata."""
    meta = f.metadata
    kwargs: dict[str, Any] = {"default": f.default, "help": meta["help"], "show_default": meta["show_default"]}
    if isinstance(f.default, bool):
        kwargs["is_flag"] = True
    elif meta["parse"] in (int, float, str):
        kwargs["type"] = meta["parse"]
    else:
        parse = meta["parse"]

        def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
            try:
                return None if value is None else parse(value)
            except ValueError as e:
                raise click.BadParameter(str(e)) from None

        kwargs["callback"] = callback
    return click.option(meta["flag"], f.name, **kwargs)


SUITE_OPTIONS = tuple(_suite_option(f) for f in RunConfig.options())


def run_config(opts: dict, beam_args: list[str] | None = None) -> RunConfig:
    """The RunConfig of a command's SUITE_OPTIONS values."""
    return RunConfig(beam_args=list(beam_args or []), **{f.name: opts[f.name] for f in RunConfig.options()})


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Eager: turn the YAML file into click's default_map, so each option falls back to its key in the file."""
    if not value:
        return
    from optbench.components.shared.untrusted import UntrustedInput, read_small_text

    try:
        data = yaml.safe_load(read_small_text(value, "settings file")) or {}
    except (OSError, UntrustedInput, yaml.YAMLError) as e:
        raise click.BadParameter(str(e)) from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: a YAML mapping of option names to values")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise click.BadParameter(f"{value}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(CONFIG_KEYS)}")
    own = {p.name for p in ctx.command.params}
    ctx.default_map = {**(ctx.default_map or {}), **{k: v for k, v in data.items() if k in own}}


config_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    envvar=CONFIG_ENV,
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help=f"YAML file of option defaults (keys: option names with _). [env: {CONFIG_ENV}]",
)

CLUSTER_OPTIONS = (
    click.option("--image", help="CPU image for ingest, evaluate and report, pinned by tag or digest."),
    click.option("--gpu-image", help="GPU image for training (TensorFlow with CUDA)."),
    click.option(
        "--gpus",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="GPUs per training task; 0 compiles a CPU-only pipeline.",
    ),
    click.option(
        "--gpu-type",
        default="nvidia-tesla-t4",
        show_default=True,
        help="GKE accelerator type of the GPU pool (node label cloud.google.com/gke-accelerator).",
    ),
    click.option(
        "--train-retries",
        type=click.IntRange(min=0),
        default=2,
        show_default=True,
        help="Retries of a failed training task (e.g. a preempted GPU node).",
    ),
    click.option(
        "--notify-secret",
        metavar="NAME",
        help="The Kubernetes Secret whose key `url` holds a webhook URL: the report step alerts it when a run "
        "finishes or its answer changes, and an exit handler when a run fails. Create it once with `kubectl create "
        "secret generic optbench-notify --from-literal=url=https://hooks.slack.com/...`.",
    ),
    click.option("--dataflow-project", help="Run ingest and evaluate's Beam on Dataflow in this project."),
    click.option("--dataflow-region", help="Dataflow region, e.g. us-central1."),
    click.option("--dataflow-temp-location", help="gs:// folder for Dataflow's temporary files."),
    click.option(
        "--dataflow-image",
        help="Dataflow's worker image, pinned: the CPU image plus Beam's boot "
        "(`make images` builds <registry>/dataflow:<commit>).",
    ),
    click.option("--dataflow-machine-type", help="Dataflow worker machine type, e.g. n2-standard-4."),
    click.option("--dataflow-service-account", help="Service account the Dataflow workers run as."),
    click.option(
        "--beam-arg", "beam_args", multiple=True, help="Extra Beam option, e.g. --beam-arg=--max_num_workers=4."
    ),
)


def _webhook(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    from optbench.components.shared.untrusted import webhook_url

    try:
        return webhook_url(value or "")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _no_url_on_a_cluster(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        raise click.BadParameter(
            "on a cluster the webhook URL must not travel in the run (the KFP UI shows a run's parameters and "
            "pipeline to everyone who can see it): store it in a Kubernetes Secret (`kubectl create secret generic "
            "optbench-notify --from-literal=url=URL`) and pass --notify-secret optbench-notify"
        )


NOTIFY_OPTION = click.option(
    "--notify",
    metavar="URL",
    envvar=NOTIFY_ENV,
    show_envvar=True,
    callback=_webhook,
    help="When the run finishes, fails or its answer changes, POST a short JSON message to this webhook (Slack "
    "incoming webhooks take it). A secret: it reaches no log, report or run.json; prefer the environment variable.",
)
# submit and schedule take --notify only to say how a cluster is told (--notify-secret)
CLUSTER_NOTIFY_OPTION = click.option(
    "--notify", metavar="URL", callback=_no_url_on_a_cluster, expose_value=False, help="See --notify-secret."
)

API_OPTIONS = (
    click.option("--host", help="KFP API endpoint. [env: KF_PIPELINES_ENDPOINT]"),
    click.option(
        "--token",
        envvar="KF_PIPELINES_TOKEN",
        show_envvar=True,
        help="Bearer token, e.g. $(gcloud auth print-access-token).",
    ),
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
    click.option(
        "--root",
        "artifacts_root",
        default="runs",
        show_default=True,
        help="Where run ids are looked up: a local folder or gs://BUCKET/PREFIX.",
    ),
)
SECRETS = ("token", "other_client_secret")  # a config file gets shared: these come from the environment


def _names(options: tuple[Callable, ...]) -> list[str]:
    def probe() -> None: ...

    for option in options:
        option(probe)
    # click.option stores its parameters on the function, an attribute its typing does not declare
    return [p.name for p in probe.__click_params__]  # type: ignore[attr-defined]


# What a --config file may set: the cluster's settings and the data options RunConfig marks `config_file`;
# not what one comparison asks for (the suite and its overrides), and no secrets.
CONFIG_KEYS = sorted(
    {f.name for f in fields(RunConfig) if f.metadata.get("config_file")}
    | set(_names(CLUSTER_OPTIONS + API_OPTIONS + RUN_OPTIONS + ARTIFACT_OPTIONS)) - {"output", *SECRETS}
)


def friendly(f: Callable) -> Callable:
    """Turn the errors a user can fix into one line instead of a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from google.auth.exceptions import GoogleAuthError
        from kfp_server_api import ApiException
        from urllib3.exceptions import HTTPError

        from optbench.docker_run import DockerRunnerError
        from optbench.images import ImageError
        from optbench.kfp_api import ApiError
        from optbench.local_run import RunFailed
        from optbench.ownership import RunBusy
        from optbench.storage import ArtifactsError, PublishError

        try:
            return f(*args, **kwargs)
        except (
            ValueError,
            ApiError,
            ArtifactsError,
            PublishError,
            RunFailed,
            RunBusy,
            TimeoutError,
            DockerRunnerError,
            ImageError,
        ) as e:
            raise click.ClickException(str(e)) from None
        except ApiException as e:
            raise click.ClickException(f"KFP API answered {e.status} {e.reason}: {e.body}") from None
        except HTTPError as e:
            raise click.ClickException(f"cannot reach the KFP API: {e}") from None
        except GoogleAuthError as e:  # no credentials for a gs:// root or destination
            raise click.ClickException(f"Google Cloud: {e}") from None
        except OSError as e:  # a full disk, a read-only or unwritable folder: the path and the cause
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{(e.strerror or str(e)).lower()}") from None

    return wrapper
