"""The container images (containers/): hadolint-clean, pinned, non-root, small, and consistent with the project.

The Dockerfiles are checked as text (hadolint for the usual mistakes, these
tests for what hadolint cannot know: bases named through ARGs, the user the
pods run as, Beam's SDK version, the CUDA pins), and the CPU image is built
with the engine `make images` uses and inspected (the e2e tests at the end).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from importlib.metadata import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from optbench import images
from optbench.pipelines.cluster import RUN_AS_USER, check_image

REPO = Path(__file__).resolve().parents[2]  # tests/optbench/ is two folders down
DOCKERFILE = REPO / images.DOCKERFILE
DATAFLOW = REPO / images.DATAFLOW_DOCKERFILE
TARGETS = images.TARGETS


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages(dockerfile: Path = DOCKERFILE) -> dict[str, dict]:
    """stage name -> {"base": image or parent stage, "body": [(INSTRUCTION, args)]}, ARG defaults substituted."""
    args: dict[str, str] = {}
    found: dict[str, dict] = {}
    current = None
    for op, rest in instructions(dockerfile):
        if op == "ARG" and current is None:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            base, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).partition(" AS ")
            current = found.setdefault(name.strip(), {"base": base.strip(), "body": []})
        else:
            current["body"].append((op, rest))
    return found


def chain(name: str) -> list[dict]:
    """The stage and the stages it is built FROM, nearest first."""
    all_stages = stages()
    out = [all_stages[name]]
    while out[-1]["base"] in all_stages:
        out.append(all_stages[out[-1]["base"]])
    return out


def lock_version(package: str) -> str:
    for line in (REPO / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} not in requirements.lock")


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("hadolint")), "--no-color", str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DATAFLOW], ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    result = hadolint(dockerfile)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_is_not_silently_passing_everything(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_every_base_image_is_pinned_and_python_matches_the_project():
    python = images.dockerfile_arg(images.DOCKERFILE, "PYTHON_IMAGE")
    assert {s["base"] for s in stages().values() if s["base"] not in stages()} == {python}
    check_image(python)
    check_image(images.LOCAL_BASE)
    requires = metadata("optbench")["Requires-Python"]
    assert re.match(r"python:3\.11\.\d+-slim-bookworm$", python) and "3.11" in requires
    assert "bookworm" in images.LOCAL_BASE, "the base built from Debian packages is bookworm's, whose Python is 3.11"


def test_beams_boot_is_only_in_the_dataflow_image_and_matches_the_locked_beam():
    beam = images.dockerfile_arg(images.DATAFLOW_DOCKERFILE, "BEAM_SDK_IMAGE")
    assert beam == f"apache/beam_python3.11_sdk:{lock_version('apache-beam')}"
    for op, _ in instructions():
        assert op != "ENTRYPOINT", "nothing may stand between KFP's command and the component"
    dataflow = instructions(DATAFLOW)
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in dataflow
    assert ("FROM", "${CPU_IMAGE}") in dataflow, "Dataflow's image is the CPU image plus the boot"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_runs_as_the_non_root_user_the_pods_ask_for(target):
    users = [rest for stage in chain(target) for op, rest in stage["body"] if op == "USER"]
    assert users, f"{target} sets a USER"
    assert users[0].split(":")[0] == str(RUN_AS_USER) != "0"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_ships_the_venv_only_no_build_tools_or_sources(target):
    shipped = chain(target)
    runtime = [s for s in shipped if s["base"].startswith("python:")]
    assert len(runtime) == 1, "the image starts from a fresh Python base, not from the build stage"
    for stage in shipped:
        for op, rest in stage["body"]:
            assert not (op == "RUN" and re.search(r"apt-get install|pip install", rest)), f"{target}: {rest}"
            if op == "COPY":
                assert rest == "--from=build /opt/venv /opt/venv" or rest == "--from=build-gpu /opt/venv /opt/venv"


def test_the_build_installs_the_project_at_the_locked_versions_and_the_gpu_build_its_cuda_pins():
    build = [rest for op, rest in stages()["build"]["body"] if op == "RUN"]
    assert any(re.search(r"pip install (\S+ )*-c requirements.lock -r dependencies.txt", r) for r in build), "locked"
    assert any("pip install --no-deps ." in r for r in build)
    gpu = [rest for op, rest in stages()["build-gpu"]["body"] if op == "RUN"]
    assert any("pip install --no-deps -r requirements-gpu.lock" in r for r in gpu)
    assert stages()["gpu"]["body"][-1] == ("COPY", "--from=build-gpu /opt/venv /opt/venv")
    order = list(stages())
    assert order.index("cpu") < order.index("build-gpu"), "the legacy builder must reach cpu before the GPU wheels"


def test_the_gpu_lock_pins_every_cuda_library_tensorflow_asks_for():
    pins = dict(
        line.split("==")
        for line in (REPO / "containers" / "requirements-gpu.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    wanted = [Requirement(r) for r in metadata("tensorflow").get_all("Requires-Dist") if 'extra == "and-cuda"' in r]
    assert wanted and {r.name for r in wanted} <= set(pins)
    for requirement in wanted:
        assert requirement.specifier.contains(pins[requirement.name]), f"{requirement} vs {pins[requirement.name]}"
    assert lock_version("tensorflow") == metadata("tensorflow")["Version"]


def test_the_build_context_holds_what_the_dockerfiles_copy_and_nothing_else(tmp_path):
    ca = tmp_path / "proxy.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----\n")
    with tarfile.open(fileobj=io.BytesIO(images.build_context(ca))) as tar:
        names = set(tar.getnames())
        assert tar.extractfile(images.CA_IN_CONTEXT).read() == ca.read_bytes()
    copied = [
        src
        for stage in stages().values()
        for op, rest in stage["body"]
        if op == "COPY" and not rest.startswith("--from=")
        for src in rest.split()[:-1]
    ]
    for source in copied:
        assert any(n == source.rstrip("/") or n.startswith(source) for n in names), source
    assert {images.DOCKERFILE, images.DATAFLOW_DOCKERFILE} <= names
    assert "optbench/images.py" in names and "components/train/train.py" in names
    for name in names:
        assert not re.search(r"__pycache__|\.pyc$|egg-info|^(\.venv|\.git|runs|\.cache|tests|infra)/", name), name
    with tarfile.open(fileobj=io.BytesIO(images.build_context())) as tar:
        assert tar.extractfile(images.CA_IN_CONTEXT).read() == b"", "no CA bundle: an empty file"


def test_images_are_named_by_repository_target_and_commit():
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    tag = images.image_tag()
    assert tag.removesuffix("-dirty") == commit.stdout.strip()
    assert images.image_ref("cpu", "abc") == "localhost/optbench/cpu:abc"
    assert images.image_ref("gpu", "abc", "europe-docker.pkg.dev/p/r/") == "europe-docker.pkg.dev/p/r/gpu:abc"
    check_image(images.image_ref("cpu"))
    with pytest.raises(ValueError, match="unknown image target 'tpu'"):
        images.image_ref("tpu")


def test_with_no_engine_and_no_root_the_user_is_told_what_to_install():
    result = subprocess.run(  # as nobody, reading the script on stdin: the checkout may be private to root
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-s"],
        input=(REPO / "containers" / "engine.sh").read_text(),
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "ENGINE": "no-such-engine"},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "no container engine answers" in result.stderr and "apt-get install docker.io" in result.stderr


def test_a_docker_run_refuses_a_cache_its_caller_cannot_read_in_one_line_before_any_task(monkeypatch):
    """Tasks run as the caller, so the caller must be able to read the whole cache they are shown. Root reads
    everything: as root, the check runs in a child process that has become nobody (uid 65534)."""
    import multiprocessing
    import tempfile

    import docker  # noqa: F401 - imported before the child drops its rights, as check_ready imports it

    from optbench.docker_run import DockerRunnerError, check_ready

    def check(answer) -> None:
        if os.getuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            check_ready("localhost/optbench/cpu:any", [])
            answer.send("no refusal")
        except DockerRunnerError as e:
            answer.send(str(e))

    with tempfile.TemporaryDirectory() as top:  # a folder nobody can reach (pytest's own are private)
        cache = Path(top, "cache")
        (cache / "private").mkdir(parents=True)
        (cache / "private" / "digits.gz").write_bytes(b"")
        Path(top).chmod(0o755)
        (cache / "private").chmod(0o700 if os.getuid() == 0 else 0)
        monkeypatch.setenv("OPTBENCH_CACHE", str(cache))
        fork = multiprocessing.get_context("fork")
        receive, send = fork.Pipe(duplex=False)
        child = fork.Process(target=check, args=(send,))
        child.start()
        message = receive.recv()
        child.join()
        (cache / "private").chmod(0o700)
    uid = 65534 if os.getuid() == 0 else os.getuid()
    assert message.startswith(f"{cache / 'private'} cannot be read by uid {uid}, whom the run's containers run as")
    assert "\n" not in message and "chmod -R u+rX" in message


def test_the_build_installs_the_stack_from_the_wheels_make_install_keeps_served_on_loopback(tmp_path):
    import urllib.request

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"a wheel")
    with images.served_wheelhouse(wheels) as url:
        assert url.startswith("http://127.0.0.1:")
        listing = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'href="six-1.16.0-py2.py3-none-any.whl"' in listing, "pip's --find-links reads the listing's links"
        assert urllib.request.urlopen(url + "six-1.16.0-py2.py3-none-any.whl", timeout=10).read() == b"a wheel"
    with images.served_wheelhouse(tmp_path / "no-wheels") as url:
        assert url == "", "no wheels kept: the build takes the package index"
    (run,) = [args for op, args in stages()["build"]["body"] if op == "RUN" and "dependencies.txt" in args]
    assert '${WHEELHOUSE_URL:+--no-index --find-links "$WHEELHOUSE_URL"}' in run


def test_images_refuses_unknown_targets_and_a_missing_ca_bundle(tmp_path):
    from click.testing import CliRunner

    from optbench.cli import main

    result = CliRunner().invoke(main, ["images", "--targets", "cpu,tpu"])
    assert result.exit_code == 2 and "tpu: choose from cpu, gpu" in result.output
    result = CliRunner().invoke(main, ["images", "--ca-bundle", str(tmp_path / "none.pem")])
    assert result.exit_code == 2 and "does not exist" in result.output


def in_image(image: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess:
    user_args = ["--user", user] if user else []
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host", *user_args, image, *command],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.e2e
def test_the_cpu_image_runs_the_project_as_the_non_root_user(cpu_image):
    assert in_image(cpu_image, "id", "-u").stdout.strip() == str(RUN_AS_USER)
    checked = in_image(
        cpu_image, "python", "-c", "import optbench.components, optbench.pipelines, kfp.dsl.executor_main, docker"
    )
    assert checked.returncode == 0, checked.stderr
    executor = in_image(cpu_image, "python", "-m", "kfp.dsl.executor_main", "--help")
    assert executor.returncode == 0 and "--executor_input" in executor.stdout


@pytest.mark.e2e
def test_the_cpu_image_ships_no_compiler_pip_cache_sources_ca_file_or_test_tools(cpu_image):
    probe = """
import importlib.util, pathlib, shutil
found = [c for c in ("gcc", "cc", "c++", "g++") if shutil.which(c)]
found += [str(p) for p in map(pathlib.Path, ("/src", "/root/.cache/pip", "/home/optbench/.cache/pip",
                                             "/tmp/ca.pem", "/tmp/extra-ca.pem")) if p.exists()]
found += [m for m in ("pytest", "ruff", "playwright", "hadolint") if importlib.util.find_spec(m)]
found += [str(p) for p in pathlib.Path("/opt/venv").rglob("test_*.py") if "optbench" in str(p)]
print("\\n".join(found))
"""
    result = in_image(cpu_image, "python", "-c", probe, user="0")  # as root, so nothing is hidden from the probe
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
    entrypoint = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Entrypoint}}", cpu_image],
        capture_output=True,
        text=True,
    )
    assert entrypoint.stdout.strip() == "null", "nothing stands between KFP's command and the component"


@pytest.mark.e2e
def test_a_build_that_fails_names_its_step_and_tags_nothing(monkeypatch, cpu_image):
    """A dependency the index does not have: pip fails inside the build, as it would with no index at all."""
    real = images.build_context

    def broken_context(ca_bundle=None) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(real(ca_bundle))) as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
            for member in src.getmembers():
                if not member.isfile():  # the package's links to components/, pipelines/, bench/
                    dst.addfile(member)
                    continue
                data = src.extractfile(member).read()
                if member.name == "pyproject.toml":
                    missing = b'dependencies = [\n    "optbench-no-such-package==0.0.1",'
                    data = data.replace(b"dependencies = [", missing)
                    member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
        return out.getvalue()

    monkeypatch.setattr(images, "build_context", broken_context)
    monkeypatch.setattr(images, "image_tag", lambda: "failed-build-test")
    with pytest.raises(images.ImageError) as failed:
        images.build_images(["cpu"], say=lambda line: None)
    assert "building the cpu image failed at 'Step" in str(failed.value) and "pip install" in str(failed.value)
    assert "optbench-no-such-package" in str(failed.value), "the log's tail says why"
    ref = images.image_ref("cpu", "failed-build-test")
    tagged = subprocess.run(["docker", "image", "inspect", ref], capture_output=True)
    assert tagged.returncode != 0, "no image is tagged after a failed build"
