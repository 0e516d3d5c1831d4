"""The container images (containers/): hadolint-clean, pinned, non-root, small, and consistent with the project.

No Docker engine runs here, so the Dockerfile is checked as text: hadolint for
the usual mistakes, and these tests for what hadolint cannot know (bases named
through ARGs, the user the pods run as, Beam's SDK version, the CUDA pins).
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from optbench.pipelines.cluster import RUN_AS_USER, check_image

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "containers" / "Dockerfile"
TARGETS = ("cpu", "gpu")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> dict[str, dict]:
    """stage name -> {"base": image or parent stage, "body": [(INSTRUCTION, args)]}, ARG defaults substituted."""
    args: dict[str, str] = {}
    found: dict[str, dict] = {}
    current = None
    for op, rest in instructions():
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


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_is_not_silently_passing_everything(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_every_base_image_is_pinned_and_python_matches_the_project():
    external = {s["base"] for s in stages().values() if s["base"] not in stages()}
    assert external, "the Dockerfile names its base images"
    for image in external:
        check_image(image)
    requires = metadata("optbench")["Requires-Python"]
    python = next(i for i in external if i.startswith("python:"))
    assert re.match(r"python:3\.11\.\d+-slim", python) and "3.11" in requires
    assert f"apache/beam_python3.11_sdk:{lock_version('apache-beam')}" in external, (
        "Beam's worker boot must come from the SDK image of the locked apache-beam"
    )


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
                source = rest.split()[-2]
                assert rest.startswith("--from=") and source in ("/opt/venv", "/opt/apache/beam"), rest


def test_the_build_installs_the_lock_then_the_project_and_the_gpu_build_its_cuda_pins():
    build = [rest for op, rest in stages()["build"]["body"] if op == "RUN"]
    assert any("pip install -r requirements.lock" in r for r in build)
    assert any("pip install --no-deps ." in r for r in build)
    gpu = [rest for op, rest in stages()["build-gpu"]["body"] if op == "RUN"]
    assert any("pip install --no-deps -r requirements-gpu.lock" in r for r in gpu)
    assert stages()["gpu"]["body"][-1] == ("COPY", "--from=build-gpu /opt/venv /opt/venv")


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


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            verdict = not negate
    return verdict


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy():
    patterns = [
        line
        for line in (REPO / "containers" / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    copied = [
        src
        for stage in stages().values()
        for op, rest in stage["body"]
        if op == "COPY" and not rest.startswith("--from=")
        for src in rest.split()[:-1]
    ]
    assert copied
    for source in copied:
        path = source.rstrip("/")
        assert (REPO / path).exists() and not ignored(path, patterns), source
    for heavy in (".venv", "runs", ".cache", ".git", "tests", "infra", "components/__pycache__"):
        assert ignored(heavy, patterns), heavy


def test_make_images_says_it_needs_docker_and_fails_without_it():
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            "mk/cluster.mk",
            "images",
            "DOCKER=no-such-docker",
            "REGISTRY=example.com/p/optbench",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert result.returncode != 0
    assert "needs a Docker engine" in result.stderr
