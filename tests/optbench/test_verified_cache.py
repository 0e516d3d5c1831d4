"""The task cache `--resume` trusts: an entry is served only while every file it names is as it was written."""

from __future__ import annotations

import logging

from kfp import dsl, local
from kfp.local import cache as kfp_cache

from optbench.verified_cache import DIGEST_SUFFIX, VerifiedCache, install


def _outputs(tmp_path) -> dict:
    model = tmp_path / "model"
    (model / "saved_model").mkdir(parents=True)
    (model / "saved_model" / "weights.bin").write_bytes(b"\1" * 4096)
    (model / "history.json").write_text('{"trial": "adam.s0"}')
    metrics = tmp_path / "metrics"
    metrics.write_text("{}")
    return {
        "model": dsl.Model(name="model", uri=str(model)),
        "metrics": [dsl.Metrics(name="metrics", uri=str(metrics))],
        "Output": ["a trial"],
    }


def test_an_entry_is_served_while_its_files_are_unchanged_and_recomputed_once_one_changes(tmp_path, caplog):
    cache = VerifiedCache(str(tmp_path / "cache"))
    outputs = _outputs(tmp_path)
    cache.put("k1", outputs)
    assert (tmp_path / "cache" / f"k1{DIGEST_SUFFIX}").is_file()
    served = cache.get("k1")
    assert served is not None and served["model"].uri == outputs["model"].uri and served["Output"] == ["a trial"]

    weights = tmp_path / "model" / "saved_model" / "weights.bin"
    weights.write_bytes(b"\1" * 2048)  # truncated, as a full disk leaves a file
    with caplog.at_level(logging.WARNING):
        assert cache.get("k1") is None
    assert f"failed verification ({weights} changed): its task runs again" in caplog.text

    weights.write_bytes(b"\1" * 4096)  # back as it was: served again
    assert cache.get("k1") is not None
    (tmp_path / "model" / "stray.txt").write_text("x")  # a file the task never wrote is a change too
    assert cache.get("k1") is None


def test_an_entry_without_its_checksums_is_not_trusted(tmp_path, caplog):
    cache = VerifiedCache(str(tmp_path / "cache"))
    cache.put("k2", _outputs(tmp_path))
    (tmp_path / "cache" / f"k2{DIGEST_SUFFIX}").unlink()
    with caplog.at_level(logging.WARNING):
        assert cache.get("k2") is None
    assert "has no readable checksums" in caplog.text
    assert cache.get("missing") is None


def test_kfp_local_looks_its_cache_up_through_the_verified_one(tmp_path):
    """kfp.local finds its cache through a module singleton; after `install` that is the verified cache, for the
    root local.init named (an upgrade of kfp that changes this fails here)."""
    root = str(tmp_path / "cache")
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), enable_caching=True, cache_root=root
    )
    try:
        installed = install(root)
        assert kfp_cache.get_local_cache() is installed and isinstance(installed, VerifiedCache)
    finally:
        kfp_cache.reset_local_cache_singleton()


def test_an_entry_whose_write_a_kill_cut_short_is_removed_when_the_cache_is_installed(tmp_path):
    """kfp.local writes an entry under a temporary name, then renames it: a kill in between leaves that file, which
    is never read; the next run of the folder removes it (tests/e2e/test_e2e.py kills a real run there)."""
    root = tmp_path / "cache"
    cache = VerifiedCache(str(root))
    cache.put("k", _outputs(tmp_path))
    partial = root / ".kfp_cache_abc123.tmp"
    partial.write_text('{"outputs": {"mo')
    try:
        install(str(root))
        assert not partial.exists() and cache.get("k") is not None
    finally:
        kfp_cache.reset_local_cache_singleton()
