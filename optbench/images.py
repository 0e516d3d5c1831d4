"""The container images: their names, and how `make images` builds them with the engine that answers.

Every name is derived here, once: `<repository>/<target>:<tag>`, where the
repository is the registry the user names (images are pushed only then) or
`localhost/optbench`, and the tag is the git commit of the files the image is
built from (with `-dirty` when those files have uncommitted changes). The
local DockerRunner (`optbench run --runner docker`) looks the CPU image up by
the same name, so a run names exactly the build that `make images` just made.

Builds send the engine a build context assembled here from the files the
Dockerfile copies (Docker's legacy builder, the one found on Debian's
docker.io, ignores per-Dockerfile ignore files and would send the whole
checkout). A build is tagged only once every asked-for target has built, so
a failed build leaves no half-tagged set behind.

Where `make install` left the locked stack as wheels in the cache, the build
installs from there instead of downloading it all again: the folder is served
over HTTP on loopback for as long as the build runs (builds use the host's
network), at a fixed port where it is free, so that the layer it installs
stays cached from one build to the next.
"""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from optbench.components.shared.files import default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS = ROOT / "containers"
DOCKERFILE = "containers/Dockerfile"
DATAFLOW_DOCKERFILE = "containers/Dockerfile.dataflow"
TARGETS = ("cpu", "gpu")
LOCAL_REPOSITORY = "localhost/optbench"
# Built from Debian bookworm's packages (containers/base.sh) where no registry's Python base can be pulled.
LOCAL_BASE = f"{LOCAL_REPOSITORY}/base:bookworm-py311"
# Inside the build context: the extra CA bundle the build stage trusts (an empty file when none).
CA_IN_CONTEXT = "containers/.build/extra-ca.pem"
# What the Dockerfiles copy from the context; nothing else is sent.
CONTEXT = (
    "requirements.lock",
    "pyproject.toml",
    "README.md",
    "components",
    "pipelines",
    "optbench",
    "bench",
    "containers/requirements-gpu.lock",
    DOCKERFILE,
    DATAFLOW_DOCKERFILE,
)
# The locked stack as wheels, where `make install` keeps them (the Makefile's WHEELS), and the loopback port the
# build reads them from.
WHEELHOUSE = "wheels"
WHEELHOUSE_PORT = 47263
_LEFT_OUT = re.compile(r"(^|/)(__pycache__|[^/]*\.egg-info)(/|$)|\.pyc$|^bench/results/")


class ImageError(RuntimeError):
    """A build step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Built:
    target: str  # cpu | gpu | dataflow
    ref: str  # <repository>/<target>:<tag>
    size_bytes: int
    seconds: float
    digest_ref: str | None = None  # <repository>/<target>@sha256:..., once pushed


def dockerfile_arg(dockerfile: str, name: str) -> str:
    """The default of a global `ARG name=default` in a Dockerfile: the one place each base image is named."""
    match = re.search(rf"^ARG {name}=(\S+)$", (ROOT / dockerfile).read_text(), re.MULTILINE)
    if not match:
        raise ImageError(f"{dockerfile} declares no default for ARG {name}")
    return match.group(1)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise ImageError(
            f"image tags are the git commit, and {ROOT} is not a git checkout ({e}): name the image (--image)"
        ) from e


def image_tag() -> str:
    """The commit the images are built from; `-dirty` when the files they copy differ from it."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=all", "--", *CONTEXT)
    return f"{commit}-dirty" if changed else commit


def image_ref(target: str, tag: str | None = None, registry: str | None = None) -> str:
    if target not in (*TARGETS, "dataflow"):
        raise ValueError(f"unknown image target {target!r}; known: {', '.join((*TARGETS, 'dataflow'))}")
    return f"{(registry or LOCAL_REPOSITORY).rstrip('/')}/{target}:{tag or image_tag()}"


def build_context(ca_bundle: str | os.PathLike | None = None) -> bytes:
    """The build context: the files the Dockerfiles copy, and the CA bundle (an empty file if none).

    Gzipped, because the docker CLI does not recognise a plain tar on stdin as a context.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for entry in CONTEXT:
            path = ROOT / entry
            # a link (optbench/components -> ../components) travels as a link, as git keeps it
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
            for file in files:
                name = file.relative_to(ROOT).as_posix()
                if not _LEFT_OUT.search(name):
                    tar.add(file, arcname=name)
        ca = Path(ca_bundle).read_bytes() if ca_bundle else b""
        info = tarfile.TarInfo(CA_IN_CONTEXT)
        info.size, info.mode = len(ca), 0o644
        tar.addfile(info, io.BytesIO(ca))
    return buffer.getvalue()


def default_ca_bundle() -> str | None:
    """What pip on this machine is told to trust ($PIP_CERT): behind a TLS-intercepting proxy, the proxy's CA too."""
    return os.environ.get("PIP_CERT") or None


def _script(name: str, *args: str) -> str:
    """Run containers/<name>; its stdout is the answer, its stderr the user's to read."""
    result = subprocess.run([str(CONTAINERS / name), *args], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise ImageError(f"containers/{name} failed (its messages are above)")
    return result.stdout.strip()


def find_engine() -> str:
    """The engine whose daemon answers (starting Debian's Docker Engine where this may): see containers/engine.sh."""
    return _script("engine.sh")


def _run_build(
    engine: str, context: bytes, dockerfile: str, build_args: dict[str, str], say: Callable[[str], None], what: str
) -> str:
    """Build from `context`; returns the image id. Nothing is tagged here."""
    log_path = CONTAINERS / ".build" / f"{what}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        iidfile = Path(tmp) / "iid"
        command = [engine, "build", "--network", "host", "-f", dockerfile, "--iidfile", str(iidfile)]
        if dockerfile == DOCKERFILE:
            command += ["--target", what]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        command.append("-")
        step = "sending the build context"
        with open(log_path, "w", encoding="utf-8", buffering=1) as log:  # line by line, for `tail -f`
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if proc.stdin is None or proc.stdout is None:
                raise RuntimeError(f"{engine} build: no pipe to its input or output")
            proc.stdin.write(context)
            proc.stdin.close()
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                log.write(line)
                if re.match(r"(Step \d+/\d+|STEP \d+/\d+|#\d+ \[)", line):
                    step = line.strip()
                    say(f"  {what}: {step}")
            code = proc.wait()
        if code != 0 or not iidfile.exists():
            tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
            raise ImageError(f"building the {what} image failed at {step!r} (full log: {log_path}):\n{tail}")
        return iidfile.read_text().strip()


def _size(engine: str, ref: str) -> int:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def build_images(
    targets: Iterable[str] = TARGETS,
    registry: str | None = None,
    ca_bundle: str | os.PathLike | None = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> list[Built]:
    """Build `targets` from containers/Dockerfile, tag them all `<repository>/<target>:<commit>`, push if `registry`."""
    targets = list(dict.fromkeys(targets))
    unknown = [t for t in targets if t not in TARGETS]
    if not targets or unknown:
        raise ImageError(f"unknown image target(s) {', '.join(unknown) or '(none)'}; known: {', '.join(TARGETS)}")
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ImageError(f"the CA bundle {ca_bundle} is not a file")
    tag = image_tag()
    engine = find_engine()
    base = _script("base.sh", engine, dockerfile_arg(DOCKERFILE, "PYTHON_IMAGE"), LOCAL_BASE)
    say(f"images: {engine}, base {base}, tag {tag}")
    context = build_context(ca_bundle)
    ids: dict[str, tuple[str, float]] = {}
    with served_wheelhouse(default_cache_dir() / WHEELHOUSE) as wheels:
        if wheels:
            say(f"images: the locked stack from this machine's wheels, {wheels}")
        for target in targets:
            started = time.perf_counter()
            build_args = {"PYTHON_IMAGE": base, "WHEELHOUSE_URL": wheels}
            image_id = _run_build(engine, context, DOCKERFILE, build_args, say, target)
            ids[target] = image_id, time.perf_counter() - started
    built = []
    for target, (image_id, seconds) in ids.items():
        ref = image_ref(target, tag, registry)
        subprocess.run([engine, "tag", image_id, ref], check=True)
        built.append(Built(target, ref, _size(engine, ref), seconds))
    dataflow = _build_dataflow(engine, context, tag, registry, say) if "cpu" in targets else None  # cpu + boot
    built += [dataflow] if dataflow else []
    return [_push(engine, b, registry) for b in built] if registry else built


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # pip's requests are the build log's to show
        pass


@contextmanager
def served_wheelhouse(folder: Path) -> Iterator[str]:
    """The URL of `folder` served on loopback while the block runs; "" where there is no such folder."""
    if not folder.is_dir():
        yield ""
        return
    handler = functools.partial(_Quiet, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    except OSError:  # the port is taken: any other (the install's layer is then built anew)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _push(engine: str, built: Built, registry: str) -> Built:
    if subprocess.run([engine, "push", built.ref]).returncode != 0:
        raise ImageError(f"pushing {built.ref} failed (is {engine} logged in to {registry}?)")
    digests = subprocess.run(
        [engine, "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", built.ref],
        capture_output=True,
        text=True,
    ).stdout.split()
    repository = built.ref.rpartition(":")[0]
    return replace(built, digest_ref=next((d for d in digests if d.startswith(repository + "@")), None))


def _build_dataflow(engine: str, context: bytes, tag: str, registry: str | None, say) -> Built | None:
    """Dataflow's worker image (the CPU image plus Beam's boot), where Beam's SDK image can be pulled."""
    beam = dockerfile_arg(DATAFLOW_DOCKERFILE, "BEAM_SDK_IMAGE")
    have = subprocess.run([engine, "image", "inspect", beam], capture_output=True).returncode == 0
    if not have and subprocess.run([engine, "pull", "-q", beam], capture_output=True).returncode != 0:
        say(f"images: dataflow skipped: {beam} cannot be pulled here (only Dataflow's workers need it)")
        return None
    started = time.perf_counter()
    args = {"CPU_IMAGE": image_ref("cpu", tag, registry), "BEAM_SDK_IMAGE": beam}
    image_id = _run_build(engine, context, DATAFLOW_DOCKERFILE, args, say, "dataflow")
    ref = image_ref("dataflow", tag, registry)
    subprocess.run([engine, "tag", image_id, ref], check=True)
    return Built("dataflow", ref, _size(engine, ref), time.perf_counter() - started)
