"""The task cache that `--resume` trusts, verified: every entry carries the checksums of the files it names.

kfp.local's cache writes an entry (a small JSON naming a task's output
artifacts) atomically, once the task has succeeded, and on a later run
checks only that each artifact still exists. A file changed or truncated
since (a disk filling up under another process, a hand edit, a half-copied
folder) would be served as the task's output. Here each entry also gets a
digest file, written through a temporary name before the entry itself: the
size and SHA-256 of every file under every local artifact it names. An entry
whose digest is missing or no longer matches is a miss: the task runs
again, and the log says why.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.local import cache as kfp_cache

from optbench.components.shared.files import read_json, write_json_atomic

log = logging.getLogger(__name__)

DIGEST_SUFFIX = ".sha256.json"
PARTIAL_ENTRIES = ".kfp_cache_*.tmp"  # the temporary names kfp.local's cache writes an entry under, then renames


def _files(uri: str) -> list[Path]:
    path = Path(uri)
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _artifacts(outputs: dict[str, Any]) -> list[dsl.Artifact]:
    found: list[dsl.Artifact] = []
    for value in outputs.values():
        values = value if isinstance(value, list) else [value]
        found += [v for v in values if isinstance(v, dsl.Artifact) and v.uri and "://" not in v.uri]
    return found


def digest(outputs: dict[str, Any]) -> dict[str, list]:
    """file path -> [size, sha256] of every file under the local artifacts among `outputs`."""
    out = {}
    for artifact in _artifacts(outputs):
        for f in _files(artifact.uri):
            with open(f, "rb") as handle:
                out[str(f)] = [f.stat().st_size, hashlib.file_digest(handle, "sha256").hexdigest()]
    return out


class VerifiedCache(kfp_cache.LocalCache):
    """kfp.local's LocalCache whose entries are served only when every file they name is as it was written."""

    def _digest_path(self, key: str) -> Path:
        return Path(self.cache_root) / f"{key}{DIGEST_SUFFIX}"

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        write_json_atomic(self._digest_path(key), digest(outputs))  # first: an entry never lacks its digest
        super().put(key, outputs)

    def get(self, key: str) -> dict[str, Any] | None:
        outputs = super().get(key)
        if outputs is None:
            return None
        try:
            expected = read_json(self._digest_path(key))
        except (OSError, ValueError):
            log.warning("cache entry %s has no readable checksums: its task runs again", key[:12])
            return None
        found = digest(outputs)
        if found != expected:
            changed = sorted(set(found) ^ set(expected) | {f for f in found if found[f] != expected.get(f)})
            log.warning("cache entry %s failed verification (%s changed): its task runs again", key[:12], changed[0])
            return None
        return outputs


def install(cache_root: str) -> VerifiedCache:
    """Make kfp.local use a VerifiedCache at `cache_root` (call after `local.init`, which names the root, and
    only while holding the run's folder: entries left half-written by a killed run are removed).

    kfp.local looks its cache up through a module-level singleton on every task (kfp 2.17's
    `cache.get_local_cache`); setting that singleton is the one way in. tests/optbench/test_verified_cache.py
    checks that a run goes through it, so an upgrade that changes this fails loudly.
    """
    for partial in Path(cache_root).glob(PARTIAL_ENTRIES):  # a write a kill cut short; the run's folder is ours
        partial.unlink(missing_ok=True)
        log.info("removed %s, a cache entry whose write was cut short", partial)
    cache = VerifiedCache(cache_root)
    with kfp_cache._cache_singleton_lock:
        kfp_cache._cache_singleton = cache
        kfp_cache._cache_singleton_root = cache_root
    return cache
