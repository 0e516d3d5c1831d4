"""The pipeline as a Kubeflow cluster runs it: images, GPUs, resources, retries and caching per step.

The DAG is the same locally and on a cluster.
Everything that only matters on Kubernetes is attached here, at compile time,
through `build_pipeline`'s `configure` hook: local runs never see an image name
or a GPU request, and the compiled YAML never carries an image nobody chose
(no default image exists here; the caller must name one, pinned).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from optbench.components.shared.notify import ENV as NOTIFY_ENV
from optbench.pipelines.pipeline import build_pipeline

STEPS = ("plan", "ingest", "init_model", "train", "tune", "decide", "evaluate", "trial_metrics", "report", "notify")
# The step-cost step times training steps, so it runs where the trials train: their image, resources, GPU.
LIKE_TRAIN = "step_cost"
GPU_RESOURCE = "nvidia.com/gpu"
# GKE labels every GPU node with its accelerator type; the selector keeps training on the GPU pool.
GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"
# The taint GKE (and infra/terraform) puts on GPU nodes so that only pods asking for one land there.
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
# The images' non-root user (containers/Dockerfile). Pods are told to run as it, so Kubernetes
# refuses to start an image that would run as root instead of silently allowing it.
RUN_AS_USER = 10001
# Training is the only step worth retrying: spot GPU nodes get preempted and a retry of a seeded
# trial reproduces the same model. A back-off leaves the autoscaler time to bring a node back.
TRAIN_RETRY_BACKOFF = "60s"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SECRET_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Resources:
    """A step's CPU and memory; the limit equals the request, so a step's speed does not depend on its neighbours."""

    cpu: str
    memory: str


DEFAULT_RESOURCES: Mapping[str, Resources] = {
    "plan": Resources("1", "2Gi"),
    "ingest": Resources("2", "8Gi"),
    "init_model": Resources("1", "4Gi"),
    "train": Resources("4", "16Gi"),
    "tune": Resources("500m", "1Gi"),
    "decide": Resources("2", "8Gi"),
    "evaluate": Resources("4", "16Gi"),
    "trial_metrics": Resources("500m", "1Gi"),
    "report": Resources("1", "4Gi"),
    "notify": Resources("250m", "512Mi"),
}
NOTIFY_SECRET_KEY = "url"  # the key of the webhook URL in the Kubernetes Secret --notify-secret names
# The steps that alert the webhook: the report (finished, changed) and the exit handler (failed).
NOTIFYING = ("report", "notify")


def check_image(ref: str) -> str:
    """`ref` if it names one build (a tag other than latest, or a digest); a moving tag would make runs unrepeatable."""
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"not an image reference: {ref!r}")
    if _DIGEST.search(ref):
        return ref
    tag = ref.rpartition("/")[2].partition(":")[2]
    if not tag or tag == "latest":
        raise ValueError(f"image {ref!r} is not pinned: give a tag other than 'latest' or a @sha256: digest")
    return ref


@dataclass(frozen=True)
class ClusterConfig:
    """What the compiled pipeline asks the cluster for.

    `gpus` = 0 compiles a CPU-only pipeline: training then runs on the CPU image
    with no GPU request, node selector or toleration.
    """

    image: str
    gpu_image: str | None = None
    gpus: int = 1
    gpu_type: str = "nvidia-tesla-t4"
    train_retries: int = 2
    notify_secret: str | None = None
    resources: Mapping[str, Resources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))

    def __post_init__(self) -> None:
        check_image(self.image)
        if self.gpus < 0:
            raise ValueError(f"gpus must be 0 (CPU only) or more, got {self.gpus}")
        if self.gpus:
            if not self.gpu_image:
                raise ValueError("training on GPUs needs the GPU image (--gpu-image); --gpus 0 trains on the CPU image")
            check_image(self.gpu_image)
        if self.notify_secret is not None and not _SECRET_NAME.fullmatch(self.notify_secret):
            raise ValueError(
                f"--notify-secret {self.notify_secret!r}: not a Kubernetes Secret name (lower-case letters, digits, "
                "'-' and '.', at most 253)"
            )
        if self.train_retries < 0:
            raise ValueError(f"train_retries must be 0 or more, got {self.train_retries}")
        missing = set(STEPS) - set(self.resources)
        if missing:
            raise ValueError(f"no resources for step(s) {', '.join(sorted(missing))}")

    @property
    def train_threads(self) -> int:
        """TensorFlow threads for CPU training: the container's CPU limit, not the node's core count it would see."""
        cpu = self.resources["train"].cpu
        cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        return max(1, math.floor(cores))

    def configure(self, task: dsl.PipelineTask, step: str) -> None:
        """The `configure` hook of build_pipeline: everything Kubernetes needs to know about one task."""
        if step not in (*STEPS, LIKE_TRAIN):
            raise ValueError(f"the pipeline created a task for unknown step {step!r}; known: {', '.join(STEPS)}")
        hardware = "train" if step == LIKE_TRAIN else step
        on_gpu = hardware == "train" and self.gpus > 0
        task.set_container_image(self.gpu_image if on_gpu else self.image)
        r = self.resources[hardware]
        task.set_cpu_request(r.cpu).set_cpu_limit(r.cpu).set_memory_request(r.memory).set_memory_limit(r.memory)
        kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True)
        # Ingest's output depends only on its parameters; every other step is re-run so timings stay real.
        task.set_caching_options(enable_caching=step == "ingest")
        if step == "train" and self.train_retries:
            task.set_retry(self.train_retries, backoff_duration=TRAIN_RETRY_BACKOFF, backoff_factor=2.0)
        if self.notify_secret and step in NOTIFYING:  # the webhook URL is a secret: never a parameter
            kubernetes.use_secret_as_env(task, self.notify_secret, secret_key_to_env={NOTIFY_SECRET_KEY: NOTIFY_ENV})
        if on_gpu:
            task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(self.gpus)
            kubernetes.add_node_selector(task, GPU_NODE_LABEL, self.gpu_type)
            kubernetes.add_toleration(task, **GPU_TAINT)


@dataclass(frozen=True)
class Dataflow:
    """Beam on Dataflow for ingest and evaluate, instead of the in-process runner.

    The workers run `image`: optbench's CPU image plus Beam's boot entrypoint
    (containers/Dockerfile.dataflow), because the Beam code is optbench's own.
    """

    project: str
    region: str
    temp_location: str
    image: str
    machine_type: str | None = None
    service_account: str | None = None

    def __post_init__(self) -> None:
        if not self.temp_location.startswith("gs://"):
            raise ValueError(f"the Dataflow temp location must be a gs:// path, got {self.temp_location!r}")
        check_image(self.image)

    def beam_args(self) -> list[str]:
        """The Beam pipeline options that send ingest's and evaluate's Beam work to Dataflow."""
        args = [
            "--runner=DataflowRunner",
            f"--project={self.project}",
            f"--region={self.region}",
            f"--temp_location={self.temp_location}",
            f"--sdk_container_image={self.image}",
        ]
        if self.machine_type:
            args.append(f"--machine_type={self.machine_type}")
        if self.service_account:
            args.append(f"--service_account_email={self.service_account}")
        return args


def compile_pipeline(
    config: ClusterConfig, form: dict, output: Path, *, beam_args: list[str], runner: str, rounds: int = 0
) -> Path:
    """Write the KFP IR YAML (what the KFP UI uploads) with the `form`'s values as the
    parameters' defaults; `beam_args`, `runner` and the rounds of seeds it holds (`rounds`) are fixed in it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(
        config.configure,
        train_threads=config.train_threads,
        beam_args=beam_args,
        runner=runner,
        notify_failures=bool(config.notify_secret),
        rounds=rounds,
    )
    compiler.Compiler().compile(pipeline, str(output), pipeline_parameters=form)
    return output
