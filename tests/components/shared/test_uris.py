"""The Beam steps' file layer: the same calls on a local folder and on gs:// (the storage emulator)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from optbench.components.shared import uris


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    _, bucket = request.getfixturevalue("gcs")
    return f"gs://{bucket.name}/out"


def test_write_read_match_fetch_and_remove_behave_alike_locally_and_on_gs(root, tmp_path):
    uris.write_json(uris.join(root, "a", "stats.json"), {"n": 1})
    local = tmp_path / "shard"
    local.write_bytes(b"records")
    uris.put(str(local), uris.join(root, "a", "part-0.tfrecord"))
    assert not local.exists(), "put moves the file"
    assert json.loads(uris.read_bytes(uris.join(root, "a", "stats.json"))) == {"n": 1}
    assert [u.rsplit("/", 1)[1] for u in uris.match(uris.join(root, "a", "part-*"))] == ["part-0.tfrecord"]
    copy = Path(uris.fetch_tree(root, tmp_path / "copy"))  # a local root is its own copy
    assert (copy / "a" / "part-0.tfrecord").read_bytes() == b"records"
    assert (copy == tmp_path / "copy") == uris.is_remote(root)
    uris.remove_tree(root)
    assert uris.match(uris.join(root, "a", "*")) == [] and not uris.exists(uris.join(root, "a", "stats.json"))


def test_a_local_move_across_file_systems_copies_then_renames(tmp_path, monkeypatch):
    real = os.replace

    def across_devices(src, dst):
        if str(src).endswith("shard"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", across_devices)
    (tmp_path / "shard").write_bytes(b"records")
    uris.put(str(tmp_path / "shard"), str(tmp_path / "out" / "part-0.tfrecord"))
    assert (tmp_path / "out" / "part-0.tfrecord").read_bytes() == b"records" and not (tmp_path / "shard").exists()
    assert os.listdir(tmp_path / "out") == ["part-0.tfrecord"], "no temporary file left beside it"
