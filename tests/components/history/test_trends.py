"""The trend report across runs: two finished runs of one suite (and a failed one), built by the real report step."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import open_in_chromium
from report_inputs import PNG_MAGIC, VARIANTS, make_run

from optbench.cli.report import report
from optbench.components.history.trends import build_trend_report
from optbench.components.shared.files import write_json_atomic
from optbench.layout import read_run

FIRST, SECOND, FAILED = "20261101-060000-aaaaaa", "20261108-060000-bbbbbb", "20261104-060000-cccccc"
CONFIG = {
    "suite": "seed-004",
    "model_name": "cnn",
    "epochs": 6,
    "batch_size": 64,
    "data_source": "auto",
    "train_limit": 0,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real_digits) -> Path:
    """Two weekly runs (the second 0.001 more accurate and 20% faster, and without adagrad) and a failed one."""
    runs_dir = tmp_path_factory.mktemp("runs")
    labels = real_digits[1]
    make_run(runs_dir, FIRST, labels, 0.0, 1.0, VARIANTS, CONFIG)
    make_run(
        runs_dir,
        SECOND,
        labels,
        0.001,
        0.8,
        {k: v for k, v in VARIANTS.items() if k != "adagrad"},
        {**CONFIG, "train_limit": 20000},
    )
    write_json_atomic(
        runs_dir / FAILED / "run.json", {"run_id": FAILED, "status": "failed", "error": "oom", "config": CONFIG}
    )
    return runs_dir


@pytest.fixture(scope="module")
def two(runs, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("trend")
    # Given newest first: the report lines them up oldest first all the same.
    return build_trend_report([read_run(runs / SECOND), read_run(runs / FIRST)], str(out)), out


def test_runs_are_lined_up_oldest_first(two):
    data, _ = two
    assert [r["run_id"] for r in data["runs"]] == [FIRST, SECOND]
    assert [r["status"] for r in data["runs"]] == ["succeeded", "succeeded"]
    assert [r["winner"] for r in data["runs"]] == [None, None]  # adam and rmsprop are tied in both
    assert data["differences"] == {"train_limit": [0, 20000]}


def test_each_variant_moves_by_the_known_amount(two):
    data, _ = two
    assert list(data["variants"]) == ["adam", "rmsprop", "momentum", "sgd", "adadelta", "adagrad"]
    adam = data["variants"]["adam"]
    first, second = adam["runs"]
    assert first["test_accuracy"] == pytest.approx(0.9885) and second["test_accuracy"] == pytest.approx(0.9895)
    assert adam["change"]["test_accuracy"] == pytest.approx(0.001)
    assert adam["change"]["train_seconds"] == pytest.approx(-0.2 * first["train_seconds"])
    assert first["test_accuracy_ci_low"] < first["test_accuracy"] < first["test_accuracy_ci_high"]
    # adagrad was dropped in the second run; adadelta diverged in both.
    assert data["variants"]["adagrad"]["runs"][1] is None and data["variants"]["adagrad"]["change"] == {
        "test_accuracy": None,
        "train_seconds": None,
    }
    assert [c["status"] for c in data["variants"]["adadelta"]["runs"]] == ["diverged", "diverged"]


def test_trend_files(two):
    data, out = two
    assert json.loads((out / "trend.json").read_text()) == json.loads(json.dumps(data))
    png = (out / "trend.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    md = (out / "trend.md").read_text()
    assert md.startswith("# Optimizer trends over 2 runs")
    assert f"| Optimizer | {FIRST} | {SECOND} | Change |" in md
    assert "| adam | 0.9885 [0.9873, 0.9897] | 0.9895 [0.9883, 0.9907] | +0.0010 |" in md
    assert "| adagrad | 0.9462 [0.9433, 0.9491] | n/a | n/a |" in md
    assert "| adadelta | diverged | diverged | n/a |" in md
    assert "| adam | 6:46 | 5:25 | -1:21 |" in md  # 406 s, then 80% of it
    assert "train_limit (0, 20000)." in md
    html = (out / "trend.html").read_text()
    (src,) = re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', html)
    assert base64.b64decode(src.split(",", 1)[1]) == png


def test_trend_html_renders_in_chromium(two):
    page = open_in_chromium(two[1] / "trend.html")
    assert page["problems"] == [] and page["outside_requests"] == []
    assert [(i["width"] > 0 and i["decoded"]) for i in page["images"]] == [True]


def test_a_failed_run_is_a_visible_gap(runs, tmp_path):
    data = build_trend_report([read_run(runs / r) for r in (FIRST, FAILED, SECOND)], str(tmp_path))
    assert [r["status"] for r in data["runs"]] == ["succeeded", "failed", "succeeded"]
    assert data["variants"]["adam"]["runs"][1] is None
    assert data["variants"]["adam"]["change"]["test_accuracy"] == pytest.approx(0.001)
    assert f"| {FAILED} | failed | n/a | none |" in (tmp_path / "trend.md").read_text()


def test_bad_runs_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        build_trend_report([read_run(runs / FIRST), read_run(runs / FIRST)], str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no run.json"):
        read_run(tmp_path)
    assert not (tmp_path / "out").exists()


def test_cli_resolves_run_ids_and_prints_the_table(runs, tmp_path):
    out = tmp_path / "trend"
    result = CliRunner().invoke(
        report, ["--compare", FIRST, str(runs / SECOND), "--runs-dir", str(runs), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["Optimizer", FIRST, SECOND, "Change"]
    assert lines[2].split() == ["adam", "0.9885", "6:46", "0.9895", "5:25", "+0.0010"]
    assert lines[-1] == f"trend report: {out / 'trend.html'}"
    default = CliRunner().invoke(report, ["--compare", FIRST, SECOND, "--runs-dir", str(runs)])
    assert default.exit_code == 0 and (runs / "trend" / "trend.html").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        ([FIRST, SECOND], "give --compare"),
        (["--compare", FIRST], "at least two runs"),
        (["--compare", FIRST, "20990101-nope"], "'20990101-nope' is neither a run folder nor a run id under"),
    ],
)
def test_cli_usage_errors(runs, args, message):
    result = CliRunner().invoke(report, [*args, "--runs-dir", str(runs)])
    assert result.exit_code == 2 and message in result.output


def test_cli_refuses_a_folder_that_is_not_a_run(runs, tmp_path):
    result = CliRunner().invoke(report, ["--compare", FIRST, str(tmp_path), "--runs-dir", str(runs)])
    assert result.exit_code == 1 and f"{tmp_path} is not a run folder: it has no run.json" in result.output
