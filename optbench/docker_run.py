"""kfp.local's DockerRunner, set up so that every task runs in optbench's CPU image as the user who started the run.

What a task reads and writes crosses the container boundary through bind
mounts only: the run's pipeline root (kfp.local mounts it, read-write), and,
read-only, the data cache the host filled when it validated the source, the
data source itself when it is a local file or folder, and the folder the
source resolved to (a system package's copy of a dataset, say), each at the
same path as on the host. The containers use the host's network, as
processes on this machine would.

Tasks run as the caller's uid and gid, not as the image's own user (which a
cluster's pods run as): a task then reads exactly what the caller's processes
read and writes files the caller owns. As the image's user, a task could not
reach a cache under a home folder of mode 700 (/root, in the image too), and
each folder above the data would have had to be opened to everyone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kfp.local import docker_task_handler

from optbench.components.shared.files import default_cache_dir


def run_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """kfp.local's `run_docker_container` with the task's real exit status. kfp 2.17 has the engine remove the
    container as it exits and takes a container gone before its status was read for a success: under load, a task
    that failed at once passed, and the next task failed for want of its outputs. Here the container is removed
    once its status is read."""
    container = client.containers.run(
        image=docker_task_handler.add_latest_tag_if_not_present(image=image),
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **run_args,
    )
    try:
        for line in container.logs(stream=True):
            print(line.decode(), end="")
        return container.wait()["StatusCode"]
    finally:
        container.remove(force=True)


docker_task_handler.run_docker_container = run_container  # what kfp.local's DockerRunner calls for every task


class DockerRunnerError(RuntimeError):
    """No engine answers, the image is not here, or the containers could not read the data; says what to do."""


def _shared(data: list[str]) -> list[Path]:
    """What tasks read from the host besides the pipeline root: the data cache, and the local data paths."""
    paths = [default_cache_dir().resolve(), *(Path(p).resolve() for p in data)]
    return [p for p in dict.fromkeys(paths) if p.exists()]


def check_ready(image: str, data: list[str]) -> None:
    """Fail before the run starts unless the caller, whom the tasks run as, can read the data, and an engine
    answers and has `image` (kfp.local would try to pull it)."""
    import docker

    for path in _shared(data):
        for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
            if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
                raise DockerRunnerError(
                    f"{p} cannot be read by uid {os.getuid()}, whom the run's containers run as, and a task needs "
                    f"it: make it readable (chmod -R u+rX {path}) or point OPTBENCH_CACHE or --data-source elsewhere"
                )
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        raise DockerRunnerError(
            f"--runner docker needs a Docker engine, and none answers ({e}). "
            "`make images` installs and starts Debian's Docker Engine when run as root; "
            "otherwise install Docker and start its daemon."
        ) from None
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise DockerRunnerError(
            f"no image {image} here: build it with `make images` (tags are the git commit), "
            "or name a local image with --image"
        ) from None
    finally:
        client.close()


def docker_runner(pipeline_root: Path, data: list[str], environment: dict[str, str]):
    """A DockerRunner for a run whose artifacts go to `pipeline_root` (call check_ready first); `environment` is
    set in every task's container besides optbench's own. Tasks run as the caller (the module's text says why).
    """
    from docker.types import Mount
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    return local.DockerRunner(
        user=f"{os.getuid()}:{os.getgid()}",
        network_mode="host",
        mounts=[Mount(str(p), str(p), type="bind", read_only=True) for p in _shared(data)],
        environment={"OPTBENCH_CACHE": str(default_cache_dir().resolve()), **environment},
    )
