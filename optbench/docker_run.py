"""kfp.local's DockerRunner, set up so that every task runs in optbench's CPU image as a non-root user.

What a task reads and writes crosses the container boundary through bind
mounts only: the run's pipeline root (kfp.local mounts it, read-write), and,
read-only, the data cache the host filled when it validated the source, the
data source itself when it is a local file or folder, and the folder the
source resolved to (a system package's copy of a dataset, say), each at the
same path as on the host. The containers use the host's network, as
processes on this machine would.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from kfp.local import docker_task_handler

from optbench.components.shared.files import default_cache_dir
from optbench.pipelines.cluster import RUN_AS_USER as IMAGE_USER  # the images' non-root user


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
    """Fail before the run starts unless an engine answers, has `image` (kfp.local would try to pull it), and
    the containers' user can read the data."""
    import docker

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
    if os.getuid() == 0:  # tasks run as the image's user, and root's files reach it only if others may read them
        for path in _shared(data):
            for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
                need = stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0)
                if p.stat().st_mode & need != need:
                    raise DockerRunnerError(
                        f"{p} cannot be read by the containers' user (uid {IMAGE_USER}), and a task needs it: "
                        f"chmod -R o+rX {path}"
                    )


def docker_runner(pipeline_root: Path, data: list[str], environment: dict[str, str]):
    """A DockerRunner for a run whose artifacts go to `pipeline_root` (call check_ready first); `environment` is
    set in every task's container besides optbench's own.

    As root, tasks run as the image's user, which gets the pipeline root;
    otherwise as the caller's uid, so the run's files stay the caller's to
    read and delete.
    """
    from docker.types import Mount
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(pipeline_root, IMAGE_USER, IMAGE_USER)
        user = f"{IMAGE_USER}:{IMAGE_USER}"
    else:
        user = f"{os.getuid()}:{os.getgid()}"
    return local.DockerRunner(
        user=user,
        network_mode="host",
        mounts=[Mount(str(p), str(p), type="bind", read_only=True) for p in _shared(data)],
        environment={"OPTBENCH_CACHE": str(default_cache_dir().resolve()), **environment},
    )
