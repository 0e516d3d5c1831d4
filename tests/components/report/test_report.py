"""The report step on the realistic run: the artifacts it reads, the files and pages it writes, and what it
refuses."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from report_inputs import CHARTS, STATS, STEP_COST, STEPS_PER_EPOCH, by_name, history, strict_json, write_artifacts

from optbench.components.report.report import build_report, run_report
from optbench.components.shared.schema import COMPARISON_JSON, PREDICTIONS_FILE, REPORT_HTML, REPORT_MD

NAN = float("nan")


def test_the_report_step_reads_its_artifacts_nan_tokens_included(tmp_path, inputs):
    histories, summary, stats, predictions = inputs
    broken = json.loads(json.dumps(histories[0]))
    broken["epochs"][2]["val_loss"] = NAN  # Python's json writes NaN as a bare token: it must still count
    dataset, model_dirs, evaluation, cost = write_artifacts(
        tmp_path, [broken, histories[3]], summary, stats, predictions
    )
    events = Path(model_dirs[1]) / "tensorboard" / "validation" / "events.out.tfevents.1.host"
    events.parent.mkdir(parents=True)
    events.write_bytes(b"\x00event bytes")
    rows = run_report(
        dataset,
        model_dirs,
        evaluation,
        cost,
        {},
        str(tmp_path / "report"),
        markdown=str(tmp_path / "md"),
        html=str(tmp_path / "html"),
    )
    strict_json((tmp_path / "report" / COMPARISON_JSON).read_text())
    assert by_name(rows)["adam"]["status"] == "diverged"  # the NaN loss counts as divergence
    assert by_name(rows)["rmsprop"]["status"] == "ok"
    assert by_name(rows)["rmsprop"]["step_seconds"] == STEP_COST["variants"]["rmsprop"]["seconds_per_step"]
    assert (tmp_path / "md").read_text() == (tmp_path / "report" / REPORT_MD).read_text()
    assert (tmp_path / "html").read_text() == (tmp_path / "report" / REPORT_HTML).read_text()
    # every trial's TensorBoard logs under one folder, by trial; a model folder without them is no error
    gathered = tmp_path / "report" / "tensorboard"
    assert [p.relative_to(gathered).as_posix() for p in gathered.rglob("*") if p.is_file()] == [
        f"{histories[3]['trial']}/validation/{events.name}"
    ]


def test_predictions_named_but_missing_is_an_error(inputs, tmp_path):
    dataset, model_dirs, evaluation, cost = write_artifacts(tmp_path, *inputs)
    (Path(evaluation) / PREDICTIONS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=PREDICTIONS_FILE):
        run_report(dataset, model_dirs, evaluation, cost, {}, str(tmp_path / "report"))
    assert not (tmp_path / "report").exists(), "nothing is written for a report that cannot be built"


def test_failed_write_leaves_no_finished_page(tmp_path, monkeypatch, inputs):
    histories, summary, stats, _ = inputs
    out = tmp_path / "report"
    build_report(histories[:3], summary, stats, {}, str(out))
    assert (out / "report.html").exists()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("optbench.components.report.report.write_json_atomic", fail)
    with pytest.raises(OSError):
        build_report(histories[:6], summary, stats, {}, str(out))
    assert not (out / "report.html").exists()


def test_short_run_without_evaluation(tmp_path):
    short = history("sgd", 0, "sgd", 0.01, 0.0, [0.90, 0.93, 0.95], 100 / 3)
    cost = {"variants": {"sgd": {"seconds_per_step": 100 / (3 * STEPS_PER_EPOCH)}}}
    (row,) = build_report([short], {}, STATS, {}, str(tmp_path), step_cost=cost)
    assert row["epochs"] == 3 and row["test_accuracy"] is None and row["blessed"] is None
    assert row["val_accuracy_epoch_5"] is None and row["val_loss_epoch_5"] is None
    assert (row["val_accuracy_last"], row["val_loss_last"]) == (0.95, 0.19)
    md = (tmp_path / "report.md").read_text()
    assert "| sgd | 0.9000 | 0.3500 | n/a | n/a | 0.9500 | 0.1900 | 1:40 |" in md and "Val acc ep3" in md
    assert "No optimizer has usable test metrics; by final validation accuracy the best was sgd (0.9500)." in md
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "accuracy.png",
        "accuracy_time.png",
        "cost.png",
        "loss.png",
    ]  # nothing tested: no error charts


def test_html_is_self_contained(report):
    _, out = report
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # settings are escaped, not executed
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", html)
    assert len(srcs) == html.count("<img") == len(CHARTS)
    for src, name in zip(srcs, CHARTS):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True) == (out / name).read_bytes()
    assert "there is no significant difference between adam and rmsprop" in html


def test_imports_neither_tensorflow_nor_kfp():
    code = (
        "import sys, optbench.components.report.report, optbench.components.report.kfp_ui, "
        "optbench.components.history.changes, optbench.components.history.trends; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'kfp', 'keras')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])  # the repository
