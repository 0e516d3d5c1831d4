"""Files of the Beam steps (ingest, evaluate) at a local path or a URI (gs://), through Beam's file systems.

On a cluster the Beam steps write to their artifact's URI, where a
distributed runner's workers (Dataflow) can reach them; locally the URI is a
path. Beam's file systems serve both, and its GCS client honours the storage
emulator (STORAGE_EMULATOR_HOST) where TensorFlow's gs:// file system does
not: TensorFlow only ever reads and writes local copies that these functions
move (`fetch`, `put`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from optbench.components.shared.files import write_bytes_atomic
from optbench.components.shared.untrusted import read_at_most

_CHUNK = 8 << 20


def is_remote(uri: str) -> bool:
    """Whether `uri` names an object store (gs://...) rather than a local path."""
    return "://" in str(uri)


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _uncompressed():
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED


def match(pattern: str) -> list[str]:
    """The sorted paths or URIs matching a glob; [] when none."""
    if not is_remote(pattern):
        import glob

        return sorted(glob.glob(pattern))
    result = _fs().match([pattern])[0]
    return sorted(m.path for m in result.metadata_list)


class Found(NamedTuple):
    """A file or object that a pattern matched: its path or URI, size in bytes and last write (Unix seconds)."""

    path: str
    size: int
    updated: float


def match_stat(pattern: str) -> list[Found]:
    """`match` with each match's size and time of last write, from the one listing (no request per object)."""
    if not is_remote(pattern):
        return [Found(p, (st := os.stat(p)).st_size, st.st_mtime) for p in match(pattern)]
    result = _fs().match([pattern])[0]
    return sorted(Found(m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in result.metadata_list)


def exists(uri: str) -> bool:
    return os.path.exists(uri) if not is_remote(uri) else _fs().exists(uri)


def read_bytes(uri: str) -> bytes:
    if not is_remote(uri):
        return Path(uri).read_bytes()
    with _fs().open(uri, compression_type=_uncompressed()) as f:
        return f.read()


def read_limited(uri: str, limit: int, what: str) -> bytes:
    """The content of `uri` if it holds at most `limit` bytes: a file from outside is refused past its limit
    without reading the rest (untrusted.read_at_most)."""
    if not is_remote(uri):
        with open(uri, "rb") as f:
            return read_at_most(f, limit, what)
    with _fs().open(uri, compression_type=_uncompressed()) as f:
        return read_at_most(f, limit, what)


def write_bytes(uri: str, data: bytes) -> str:
    """Write `data` whole: locally through a temporary name, remotely as one upload (an object appears whole)."""
    if not is_remote(uri):
        return str(write_bytes_atomic(uri, data))
    with _fs().create(uri, compression_type=_uncompressed()) as f:
        f.write(data)
    return uri


def write_json(uri: str, obj: Any) -> str:
    return write_bytes(uri, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def put(local_path: str | os.PathLike, uri: str) -> str:
    """Move a finished local file to `uri` (a rename locally, an upload remotely); return `uri`."""
    if not is_remote(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local_path, uri)
        except OSError:  # another file system (a tmpfs /tmp): copy beside the destination, then rename
            write_bytes_atomic(uri, Path(local_path).read_bytes())
            os.remove(local_path)
        return uri
    with open(local_path, "rb") as src, _fs().create(uri, compression_type=_uncompressed()) as dest:
        shutil.copyfileobj(src, dest, _CHUNK)
    os.remove(local_path)
    return uri


def fetch(uri: str, local_dir: str | os.PathLike) -> str:
    """A local copy of `uri` in `local_dir` (the path itself when it is local already)."""
    if not is_remote(uri):
        return uri
    dest = Path(local_dir) / uri.rstrip("/").rsplit("/", 1)[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _fs().open(uri, compression_type=_uncompressed()) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    return str(dest)


def fetch_tree(uri: str, local_dir: str | os.PathLike) -> str:
    """A local copy of everything under folder `uri` (the folder itself when it is local already)."""
    if not is_remote(uri):
        return uri
    prefix = uri.rstrip("/") + "/"
    for found in match(prefix + "**"):
        fetch(found, Path(local_dir) / os.path.dirname(found[len(prefix) :]))
    return str(local_dir)


def remove(found: list[str]) -> None:
    """Delete these files or objects."""
    if found:
        _fs().delete(found)


def remove_tree(uri: str) -> None:
    """Delete folder `uri` and everything under it, if it exists: no stale output from an earlier attempt."""
    if not is_remote(uri):
        shutil.rmtree(uri, ignore_errors=True)
        return
    remove(match(uri.rstrip("/") + "/**"))
