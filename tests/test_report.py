"""The report step on realistic inputs: three optimizers, one diverged, one never evaluated."""
from __future__ import annotations

import base64
import csv
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from components.report import build_report, format_table, load_inputs
from components.report.comparison import SCALAR_COLUMNS

NAN = float("nan")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIST_KEYS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "epoch_seconds")
REQUIRED_KEYS = set(SCALAR_COLUMNS) | set(LIST_KEYS)


def history(name: str, val_acc: list[float], val_loss: list[float], seconds: float, lr: float = 0.001,
            status: str = "ok", diverged_at: int | None = None) -> dict:
    """A history.json as the train step writes it (docs/artifacts.md)."""
    n = len(val_acc)
    return {
        "optimizer": name, "optimizer_config": {"class_name": name.title(), "learning_rate": lr},
        "model": "cnn", "batch_size": 64, "seed": 0, "device": "CPU",
        "status": status, "diverged_at_epoch": diverged_at,
        "epochs": [{"epoch": i + 1, "loss": val_loss[i] * 1.1, "accuracy": val_acc[i] - 0.01,
                    "val_loss": val_loss[i], "val_accuracy": val_acc[i], "seconds": seconds / n,
                    "examples_per_second": 54000 * n / seconds} for i in range(n)],
        "train_seconds": seconds, "parameters": 1199882, "train_examples": 54000,
    }


ADAM = history("adam", [0.9612, 0.9750, 0.9801, 0.9850, 0.9871, 0.9890],
               [0.1234, 0.0810, 0.0602, 0.0455, 0.0388, 0.0341], 402.4)
ADAGRAD = history("adagrad", [0.8803, 0.9102, 0.9255, 0.9350, 0.9411, 0.9460],
                  [0.4400, 0.3100, 0.2600, 0.2300, 0.2100, 0.1950], 601.0)
MOMENTUM = history("momentum", [0.9100, 0.6000, 0.0980, 0.0980, 0.0980, 0.0980],
                   [0.3000, 1.9000, NAN, NAN, NAN, NAN], 455.0, lr=0.01, status="diverged", diverged_at=3)
for e in MOMENTUM["epochs"][2:]:
    e["loss"] = NAN
EVALUATION = {  # adagrad's evaluation is missing
    "baseline": "momentum", "test_examples": 10000, "validation_ok": True,
    "models": {
        "adam": {"example_count": 10000, "accuracy": 0.9902, "loss": 0.0297, "top3_accuracy": 0.9991,
                 "accuracy_diff_vs_baseline": 0.8922, "blessed": True},
        "momentum": {"example_count": 10000, "accuracy": 0.0980, "loss": NAN, "top3_accuracy": 0.3000,
                     "accuracy_diff_vs_baseline": None, "blessed": False},
    },
}
STATS = {
    "source": {"kind": "idx", "uri": "/shared/data/mnist", "full_mnist": True, "note": "genuine MNIST idx files"},
    "splits": {"train": {"count": 54000, "per_class": {"0": 5330, "1": 6070}},
               "validation": {"count": 6000, "per_class": {"0": 593, "1": 672}},
               "test": {"count": 10000, "per_class": {"0": 980, "1": 1135}}},
    "validation_fraction": 0.1, "train_limit": None, "seed": 0,
}
SETTINGS = {"run_id": "r-42", "model": "cnn", "epochs": 6, "batch_size": 64, "seed": 0,
            "versions": {"tensorflow": "2.21.0"}, "note": "<script>alert(1)</script> | pipe"}


def strict_json(text: str):
    def refuse(token: str):
        raise ValueError(f"non-strict JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("run") / "report"
    return build_report([ADAGRAD, MOMENTUM, ADAM], EVALUATION, STATS, SETTINGS, str(out)), out


def test_rows_ranked_by_test_accuracy_untested_last(report):
    rows, _ = report
    # adagrad has the better validation accuracy than momentum but no test metrics: it goes last.
    assert [r["optimizer"] for r in rows] == ["adam", "momentum", "adagrad"]
    assert [r["status"] for r in rows] == ["ok", "diverged", "ok"]
    assert rows[1]["diverged_at_epoch"] == 3
    assert rows[2]["test_accuracy"] is None and rows[2]["blessed"] is None
    assert rows[0]["blessed"] is True and rows[0]["learning_rate"] == 0.001


def test_article_columns_are_the_history_values(report):
    rows, _ = report
    for row, h in zip(rows, [ADAM, MOMENTUM, ADAGRAD]):
        epochs = h["epochs"]
        assert row["epochs"] == 6
        assert row["val_accuracy_epoch_1"] == epochs[0]["val_accuracy"]
        assert row["val_accuracy_epoch_5"] == epochs[4]["val_accuracy"]
        assert row["val_accuracy_last"] == epochs[5]["val_accuracy"]
        assert row["train_seconds"] == h["train_seconds"]
    adam = rows[0]
    assert (adam["val_loss_epoch_1"], adam["val_loss_epoch_5"], adam["val_loss_last"]) == (0.1234, 0.0388, 0.0341)
    assert adam["val_accuracy"] == [e["val_accuracy"] for e in ADAM["epochs"]]
    assert adam["test_accuracy"] == 0.9902 and adam["test_top3_accuracy"] == 0.9991
    momentum = rows[1]
    assert momentum["val_loss"] == [0.3, 1.9, None, None, None, None]
    assert momentum["val_loss_epoch_5"] is None and momentum["test_loss"] is None


def test_short_run_has_no_epoch_5_columns(tmp_path):
    short = history("sgd", [0.90, 0.93, 0.95], [0.35, 0.25, 0.18], 100.0, lr=0.01)
    (row,) = build_report([short], {}, STATS, {}, str(tmp_path))
    assert row["epochs"] == 3
    assert row["val_accuracy_epoch_5"] is None and row["val_loss_epoch_5"] is None
    assert (row["val_accuracy_last"], row["val_loss_last"]) == (0.95, 0.18)
    md = (tmp_path / "report.md").read_text()
    assert "| sgd | 0.9000 | 0.3500 | n/a | n/a | 0.9500 | 0.1800 | 1:40 |" in md
    assert "Val acc ep3" in md and "No optimizer has test metrics" in md


def test_comparison_json_is_strict_with_required_keys(report):
    rows, out = report
    data = strict_json((out / "comparison.json").read_text())
    assert [d["optimizer"] for d in data] == [r["optimizer"] for r in rows]
    for d in data:
        assert REQUIRED_KEYS <= d.keys()
        assert all(isinstance(d[k], list) and len(d[k]) == d["epochs"] for k in LIST_KEYS)


def test_csv_round_trips(report):
    rows, out = report
    with open(out / "comparison.csv", newline="") as f:
        parsed = list(csv.DictReader(f))
    assert list(parsed[0]) == list(SCALAR_COLUMNS)
    for got, row in zip(parsed, rows, strict=True):
        for key in SCALAR_COLUMNS:
            want = row[key]
            if want is None:
                assert got[key] == ""
            elif isinstance(want, (bool, str)):
                assert got[key] == str(want)
            else:
                assert float(got[key]) == want


def test_charts_are_real_pngs(report):
    _, out = report
    for name in ("accuracy.png", "loss.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (770, 495)


def test_html_is_self_contained(report):
    _, out = report
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # settings are escaped, not executed
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", html)
    assert len(srcs) == html.count("<img") == 2
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    assert "adam reached the highest test accuracy" in html


def test_markdown_has_formatted_tables_and_verdict(report):
    _, out = report
    md = (out / "report.md").read_text()
    assert md.startswith("# Optimizer comparison: cnn on MNIST")
    assert "| Optimizer | Val acc ep1 | Val loss ep1 | Val acc ep5 | Val loss ep5 | Val acc ep6 | Val loss ep6 |" in md
    assert "| adam | 0.9612 | 0.1234 | 0.9871 | 0.0388 | 0.9890 | 0.0341 | 6:42 |" in md
    assert "| momentum (diverged) | 0.9100 | 0.3000 | 0.0980 | n/a | 0.0980 | n/a | 7:35 |" in md
    assert "| adagrad | 0.8803 | 0.4400 | 0.9411 | 0.2100 | 0.9460 | 0.1950 | 10:01 |" in md
    assert "| adam | 0.9902 | 0.0297 | 0.9991 | +0.8922 | yes |" in md
    assert "| momentum (diverged) | 0.0980 | n/a | 0.3000 | baseline | no |" in md
    assert "| adagrad | n/a | n/a | n/a | n/a | n/a |" in md
    assert "| train | 54,000 | 5,330-6,070 |" in md and "| test | 10,000 | 980-1,135 |" in md
    assert "| note | &lt;script&gt;alert(1)&lt;/script&gt; \\| pipe |" in md  # no raw HTML, table intact
    assert "![Validation accuracy](accuracy.png)" in md and "![Validation loss](loss.png)" in md
    assert "nan" not in md.lower()
    verdict = md.split("\n\n")[1]
    assert verdict.startswith("adam reached the highest test accuracy, 0.9902, 0.8922 ahead of the runner-up momentum")
    assert "adam trained fastest (6:42), adagrad slowest (10:01)" in verdict
    assert "momentum diverged at epoch 3" in verdict and "No test metrics for adagrad" in verdict


def test_verdict_names_the_weakest_of_three(tmp_path):
    summary = {"baseline": "adagrad", "models": {
        "adam": {"accuracy": 0.9902, "loss": 0.03}, "adagrad": {"accuracy": 0.9460, "loss": 0.19},
        "sgd": {"accuracy": 0.9693, "loss": 0.10}}}
    sgd = history("sgd", [0.92] * 6, [0.25] * 6, 300.0, lr=0.01)
    build_report([ADAGRAD, sgd, ADAM], summary, STATS, {}, str(tmp_path))
    verdict = (tmp_path / "report.md").read_text().split("\n\n")[1]
    assert verdict.startswith("adam reached the highest test accuracy, 0.9902, 0.0209 ahead of the runner-up sgd "
                              "(0.9693); the weakest was adagrad (0.9460).")
    assert "sgd trained fastest (5:00)" in verdict


def test_format_table_lists_every_optimizer(report):
    rows, _ = report
    table = format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(rows) and len({len(line) for line in lines}) == 1  # fixed width
    for line, name in zip(lines[2:], ["adam", "momentum", "adagrad"]):
        assert line.startswith(name)
    assert "Test acc" in lines[0] and "0.9902" in lines[2]


def test_load_inputs_reads_nan_tokens(tmp_path):
    paths = []
    for h in (ADAM, MOMENTUM):
        paths.append(tmp_path / f"{h['optimizer']}.json")
        paths[-1].write_text(json.dumps(h))  # Python's json writes NaN as a bare token
    (tmp_path / "summary.json").write_text(json.dumps(EVALUATION))
    (tmp_path / "stats.json").write_text(json.dumps(STATS))
    histories, evaluation, stats = load_inputs([str(p) for p in paths], str(tmp_path / "summary.json"),
                                               str(tmp_path / "stats.json"))
    assert math.isnan(histories[1]["epochs"][2]["val_loss"])
    rows = build_report(histories, evaluation, stats, {}, str(tmp_path / "report"))
    strict_json((tmp_path / "report" / "comparison.json").read_text())
    assert rows[1]["val_loss"][2] is None


@pytest.mark.parametrize("histories, message", [
    ([], "no training histories"),
    ([ADAM, ADAM], "more than one history: adam"),
    ([{"epochs": []}], "'optimizer' name"),
])
def test_bad_input_is_refused_before_writing(tmp_path, histories, message):
    with pytest.raises(ValueError, match=message):
        build_report(histories, EVALUATION, STATS, {}, str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()


def test_failed_write_leaves_no_finished_page(tmp_path, monkeypatch):
    out = tmp_path / "report"
    build_report([ADAM], EVALUATION, STATS, {}, str(out))
    assert (out / "report.html").exists()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr("components.report.build.write_json_atomic", fail)
    with pytest.raises(OSError):
        build_report([ADAM, ADAGRAD], EVALUATION, STATS, {}, str(out))
    assert not (out / "report.html").exists()


def test_imports_neither_tensorflow_nor_kfp():
    code = ("import sys, components.report; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'kfp', 'keras')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
