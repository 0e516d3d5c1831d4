"""Every run knows its history: three runs of one suite through the real report builder, the third with another
learning rate for one optimizer; what is skipped under a history root; gs:// roots; `optbench runs`.

The inputs are tests/report_inputs.py's synthetic histories, evaluation and predictions (errors placed on the genuine
MNIST test labels): identical inputs give identical predictions, so two runs differ exactly where a test says.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import open_in_chromium
from report_inputs import PNG_MAGIC, SETTINGS, STEP_COST, VARIANTS, realistic_run, write_artifacts

from optbench.cli.cluster import runs
from optbench.components.history import records as hist
from optbench.components.history.changes import what_changed
from optbench.components.history.records import History, earlier_runs
from optbench.components.report.report import build_report, run_report
from optbench.components.shared.files import write_json_atomic
from optbench.components.shared.schema import CHANGES_JSON, RECORD_JSON, REPORT_MD

SUITE = "seed-004"
FIRST, SECOND, THIRD = "run-c", "run-b", "run-a"  # ids out of time order: runs are ordered by when they finished
SMALL = {k: VARIANTS[k] for k in ("adam", "sgd", "adagrad")}
# The third run: sgd at learning rate 0.05 instead of 0.01, and clearly more accurate (0.985 against 0.970).
RETUNED = {**SMALL, "sgd": ("sgd", 0.05, *VARIANTS["sgd"][2:5], [0.9852, 0.9848, 0.9855], None)}


def step_cost(factor: float = 1.0, slower: dict[str, float] | None = None) -> dict:
    """STEP_COST with every step `factor` times as dear (a night's noise) and `slower` (variant -> factor) more."""
    variants = {
        name: {**v, "seconds_per_step": v["seconds_per_step"] * factor * (slower or {}).get(name, 1.0)}
        for name, v in STEP_COST["variants"].items()
    }
    return {**STEP_COST, "variants": variants}


def record_run(root: Path, run_id: str, labels, variants=SMALL, suite=SUITE, cost=None, notify=None, **kw) -> Path:
    """A finished local run as the runner leaves it: <root>/<run_id>/report/ from the report builder, given the
    suite's earlier runs under `root`, and run.json. Returns the report folder."""
    histories, summary, stats, predictions = realistic_run(labels, variants=variants, **kw)
    out = root / run_id / "report"
    build_report(
        histories,
        summary,
        stats,
        {**SETTINGS, "run_id": run_id, "suite": suite},
        str(out),
        predictions=predictions,
        step_cost=cost or step_cost(),
        history=History(str(root), *earlier_runs(str(root), suite, run_id)),
        notify=notify,
    )
    write_json_atomic(root / run_id / "run.json", {"run_id": run_id, "status": "succeeded", "suite": {"name": suite}})
    return out


@pytest.fixture(scope="module")
def labels(real_digits) -> np.ndarray:
    return real_digits[1].astype(np.int64)


@pytest.fixture(scope="module")
def three(tmp_path_factory, labels) -> tuple[Path, list[Path], list[dict]]:
    """(root, report folders, what the notifier was given) of three runs: two alike, then sgd retuned and its
    step 30% dearer."""
    root = tmp_path_factory.mktemp("runs")
    told: list[dict] = []

    def notify(summary: dict) -> str:
        told.append(summary)
        return "sent to the test"

    reports = [
        record_run(root, FIRST, labels),
        record_run(root, SECOND, labels, cost=step_cost(1.02)),
        record_run(root, THIRD, labels, RETUNED, cost=step_cost(1.01, {"sgd": 1.3}), notify=notify),
    ]
    return root, reports, told


def changes_of(report: Path) -> dict:
    return json.loads((report / CHANGES_JSON).read_text())


def test_the_first_run_has_nothing_to_compare_with(three):
    root, (first, *_), _ = three
    changes = changes_of(first)
    assert changes["since"] is None and changes["flags"] == [] and changes["changed"] is False
    assert f"First run of suite {SUITE} under {root}: nothing to compare with yet." in (first / REPORT_MD).read_text()


def test_an_identical_run_changes_nothing_and_says_which_tests_found_so(three):
    _, (_, second, _), _ = three
    changes = changes_of(second)
    assert changes["since"]["run_id"] == FIRST and changes["flags"] == [] and changes["changed"] is False
    tests = " ".join(changes["tests"])
    assert "test accuracy of adam, sgd, adagrad: paired with run run-c by seed and test example" in tests
    assert "paired bootstrap over seeds and examples" in tests
    # one earlier run says nothing about how a step's cost varies from run to run: not judged, not flagged
    assert "adam: step cost not judged (1 earlier runs measured it, 2 needed)" in changes["not_judged"]
    md = (second / REPORT_MD).read_text()
    assert f"### What changed since run {FIRST}\n\nNothing changed.\n" in md
    # an earlier run made before an option existed: the option arriving switched off is no change, on it is one
    before = json.loads((three[1][0] / RECORD_JSON).read_text())
    now = json.loads((second / RECORD_JSON).read_text())
    for record, value in ((before, None), (now, False)):
        record["settings"].pop("until_decided", None)
        if value is not None:
            record["settings"]["until_decided"] = value
    assert what_changed(now, [before], "runs", [])["flags"] == []
    now["settings"]["until_decided"] = True
    (flag,) = what_changed(now, [before], "runs", [])["flags"]
    assert flag["text"] == "until_decided: true, was null"


def test_the_retuned_optimizer_is_flagged_with_its_learning_rate_and_its_accuracy(three):
    _, (*_, third), _ = three
    changes = changes_of(third)
    assert changes["since"]["run_id"] == SECOND and changes["changed"] is True
    flags = {(f["kind"], f.get("optimizer")): f for f in changes["flags"]}
    assert set(flags) == {("hyperparameter", "sgd"), ("accuracy", "sgd"), ("step_cost", "sgd")}
    assert "sgd: learning_rate 0.05, was 0.01" in flags["hyperparameter", "sgd"]["text"]
    accuracy = flags["accuracy", "sgd"]
    assert accuracy["evidence"]["test"] == "paired-bootstrap" and accuracy["evidence"]["seeds"] == [0, 1, 2]
    assert accuracy["evidence"]["difference"] == pytest.approx(0.98517 - 0.97023, abs=2e-4)
    assert accuracy["evidence"]["p_holm"] < 0.05 and accuracy["evidence"]["ci_low"] > 0
    assert "sgd: test accuracy 0.9852, was 0.9702 (+0.0149 on the same test examples and seeds" in accuracy["text"]
    cost = flags["step_cost", "sgd"]  # adam and adagrad, 1% dearer like the whole run, are within the interval
    assert cost["evidence"]["test"] == "prediction-interval" and len(cost["evidence"]["before"]) == 2
    assert cost["evidence"]["after"] / np.mean(cost["evidence"]["before"]) == pytest.approx(1.3)
    assert "(+30%, slower; outside their 95% prediction interval" in cost["text"]
    md = (third / REPORT_MD).read_text()
    history = md.split("## History")[1].split("\n## ")[0]
    assert f"### What changed since run {SECOND}" in history
    for flag in changes["flags"]:
        assert f"- {flag['text']}" in history


def test_the_history_section_lines_the_runs_up_by_when_they_finished(three):
    _, (*_, third), _ = three
    history = (third / REPORT_MD).read_text().split("## History")[1].split("\n## ")[0]
    assert f"| Optimizer | {FIRST} | {SECOND} | {THIRD} | Change |" in history
    assert "| sgd | 0.9702 [0.9684, 0.9721] | 0.9702 [0.9684, 0.9721] | 0.9852 [0.9843, 0.9860] | +0.0149 |" in history
    adam = next(line for line in history.splitlines() if line.startswith("| adam | 2:"))
    assert adam == "| adam | 2:32 | 2:35 | 2:33 | +0:02 |", adam  # cost: 6 x 844 steps x 30 ms, x 1.02, x 1.01
    assert f"| {FIRST} |" in history and "| nothing |" in history and "| 3 flag(s) |" in history
    png = (third / "history.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and "](history.png)" in history
    assert "What changed since run" in (third / "report.html").read_text()


def test_the_history_section_renders_in_chromium(three):
    _, (*_, third), _ = three
    page = open_in_chromium(third / "report.html")
    assert page["problems"] == [] and page["outside_requests"] == []
    assert all(i["width"] > 0 and i["decoded"] for i in page["images"])


def test_the_notifier_is_told_once_before_the_report_and_its_status_is_shown(three):
    _, (*_, third), told = three
    (summary,) = told
    assert summary["suite"] == SUITE and summary["run_id"] == THIRD and summary["changed"] is True
    assert summary["winner"] == "adam" and summary["verdict"].startswith("On MNIST: adam wins")
    assert any("learning_rate 0.05, was 0.01" in text for text in summary["changes"])
    assert "| notify.status | sent to the test |" in (third / REPORT_MD).read_text()


def test_the_record_holds_what_a_later_run_needs_and_is_small(three, labels):
    _, (first, *_), _ = three
    record = json.loads((first / RECORD_JSON).read_text())
    assert (record["schema"], record["run_id"], record["suite"]) == (1, FIRST, SUITE)
    assert record["settings"]["epochs"] == SETTINGS["epochs"] and "notify" not in record["settings"]
    assert record["winner"] == {"optimizer": "adam", "significant": True}
    assert record["variants"]["sgd"]["hyperparameters"]["learning_rate"] == 0.01
    assert (
        record["variants"]["sgd"]["step_cost"]["seconds_per_step"] == step_cost()["variants"]["sgd"]["seconds_per_step"]
    )
    assert record["test_set"]["examples"] == len(labels) and len(record["test_set"]["labels_sha256"]) == 64
    predictions = realistic_run(labels, variants=SMALL)[3]
    bits = np.unpackbits(np.frombuffer(base64.b64decode(record["correct"]["sgd.s1"]), np.uint8), count=len(labels))
    assert np.array_equal(bits.astype(bool), predictions.correct("sgd.s1"))
    assert len(record["correct"]) == 9 and (first / RECORD_JSON).stat().st_size < 60_000
    assert hist.check_record(record) is record


def test_a_new_winner_and_a_new_divergence_are_flagged_and_a_recovery_too(three):
    _, (first, *_), _ = three
    before = json.loads((first / RECORD_JSON).read_text())
    after = copy.deepcopy(before) | {"run_id": "later"}
    after["winner"] = {"optimizer": "adam", "significant": False}
    adam = next(r for r in after["rows"] if r["optimizer"] == "adam")
    adam["per_seed"][2]["diverged"] = True
    flags = {f["kind"]: f for f in what_changed(after, [before], "runs", [])["flags"]}
    assert flags["winner"]["text"] == "winner: no significant winner (best: adam), was adam"
    assert flags["divergence"]["text"] == "adam: diverged on seed 2 (1 of 3 seeds), not in the previous run"
    back = {f["kind"]: f for f in what_changed(before, [after], "runs", [])["flags"]}
    assert back["winner"]["text"] == "winner: adam, was no significant winner (best: adam)"
    assert back["recovery"]["text"] == "adam: no longer diverges on seed 2 (0 of 3 seeds diverged)"


def test_on_another_test_set_the_intervals_decide_and_one_seed_is_not_judged(three, labels, tmp_path):
    root, (*_, third), _ = three
    shutil.copytree(third, tmp_path / THIRD / "report")
    report = record_run(tmp_path, "run-d", labels[:5000])
    changes = changes_of(report)
    (accuracy,) = [f for f in changes["flags"] if f["kind"] == "accuracy"]
    assert accuracy["optimizer"] == "sgd" and accuracy["evidence"]["test"] == "95% intervals over seeds"
    assert "the 95% intervals over seeds do not overlap" in accuracy["text"]
    assert any("95% intervals over seeds (another test set" in t for t in changes["tests"])
    one_seed = record_run(tmp_path, "run-e", labels[:4000], seeds=(0,))
    assert (
        "adam: test accuracy not judged (one seed, so no interval, and another test set)"
        in (changes_of(one_seed)["not_judged"])
    )


def test_what_is_not_a_run_of_this_suite_is_skipped_with_a_note_never_mixed_in(three, tmp_path):
    root, (first, second, _), _ = three
    good = json.loads((first / RECORD_JSON).read_text())

    def put(run_id: str, content: bytes | dict, run_json: dict | None = None) -> None:
        folder = tmp_path / run_id
        if content is not None:
            (folder / "report").mkdir(parents=True)
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            (folder / "report" / RECORD_JSON).write_bytes(data)
        if run_json is not None:
            write_json_atomic(folder / "run.json", run_json)

    put(FIRST, good)
    put("other", {**good, "run_id": "other", "suite": "modern"})
    put("failed", None, {"status": "failed", "suite": {"name": SUITE}})
    put("busy", None, {"status": "running", "suite": {"name": SUITE}})
    put("failed-elsewhere", None, {"status": "failed", "suite": {"name": "modern"}})
    put("corrupt", b'{"schema": 1, "run_id": "corr')
    put("renamed", good)  # a copy: its record names another run
    put("hostile", {**good, "run_id": "hostile", "rows": [{**good["rows"][0], "test_accuracy": "0.99"}]})
    put("huge", b" " * (hist.MAX_RECORD_BYTES + 1))
    put("me", {**good, "run_id": "me"})  # this run's own record, from an earlier attempt
    (tmp_path / "trend").mkdir()  # not a run folder: no note
    records, notes = earlier_runs(str(tmp_path), SUITE, "me")
    assert [r["run_id"] for r in records] == [FIRST]
    assert sorted(notes) == sorted(
        [
            "run busy: still running, no report yet: skipped",
            "run failed: failed, no report: skipped",
            "run corrupt: record.json not used (Unterminated string starting at: line 1 column 25 (char 24)): skipped",
            "run renamed: record.json not used (it names run run-c, not its folder's): skipped",
            "run hostile: record.json not used (rows[0].test_accuracy is not a finite number or null): skipped",
            f"run huge: record.json not used (record.json holds more than {hist.MAX_RECORD_BYTES:,} bytes: refused "
            "without reading the rest): skipped",
            "run me: this run's own record, from an earlier attempt: not compared",
            f"2 run(s) of other suites under {tmp_path}: skipped",
        ]
    )
    put("later", {**good, "run_id": "later"})
    records, notes = hist.read_records(str(tmp_path), SUITE, limit=1)
    assert [r["run_id"] for r in records] == ["later"]  # the newest only
    assert any(n.startswith("10 older run folder(s) under") for n in notes)


def test_a_gs_history_is_read_and_written_by_the_report_step(gcs, labels, tmp_path):
    _, bucket = gcs
    root = f"gs://{bucket.name}/history"
    inputs = realistic_run(labels, variants=SMALL)
    for run_id in ("cluster-1", "cluster-2"):
        (tmp_path / run_id).mkdir()
        run_report(
            *write_artifacts(tmp_path / run_id, *inputs),
            {**SETTINGS, "run_id": run_id},
            str(tmp_path / run_id / "out"),
            history_root=root,
        )
        published = bucket.blob(f"history/{run_id}/report/{RECORD_JSON}").download_as_bytes()
        assert published == (tmp_path / run_id / "out" / RECORD_JSON).read_bytes()
    changes = changes_of(tmp_path / "cluster-2" / "out")
    assert changes["root"] == root and changes["since"]["run_id"] == "cluster-1" and changes["flags"] == []
    assert any("test accuracy of" in t for t in changes["tests"])
    assert "Nothing changed." in (tmp_path / "cluster-2" / "out" / REPORT_MD).read_text()


def test_a_history_root_that_cannot_be_listed_is_a_note_not_a_failed_report(labels, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    inputs = realistic_run(labels, variants=SMALL)
    (tmp_path / "a").mkdir()
    run_report(
        *write_artifacts(tmp_path / "a", *inputs), SETTINGS, str(tmp_path / "out"), history_root=str(tmp_path / "file")
    )
    assert changes_of(tmp_path / "out")["notes"] == [f"cannot list the runs under {tmp_path / 'file'}: not a folder"]


def invoke(*args: str):
    return CliRunner().invoke(runs, list(args))


def test_optbench_runs_shows_each_suites_last_runs_and_what_changed(three, tmp_path):
    root, *_ = three
    result = invoke("--root", str(root))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"suite {SUITE}: the last 3 run(s) under {root}"
    assert lines[1].split() == [
        "FINISHED",
        "(UTC)",
        "RUN",
        "ID",
        "WINNER",
        "(TEST",
        "ACC)",
        "SINCE",
        "THE",
        "RUN",
        "BEFORE",
    ]
    assert [line.split()[2] for line in lines[2:4]] == [FIRST, SECOND]
    assert lines[2].split()[3:] == ["adam", "0.9885", "first", "run"]
    assert lines[3].split()[3:] == ["adam", "0.9885", "same", "answer"]
    assert lines[4].split()[2:] == [THIRD, "adam", "0.9885", "changed", "(3):"]
    assert any(line.startswith("      - sgd: learning_rate 0.05, was 0.01") for line in lines[5:])
    config = tmp_path / "optbench.yaml"
    config.write_text(yaml.safe_dump({"history_root": str(root)}))
    limited = CliRunner().invoke(runs, ["--config", str(config), "--limit", "1"])
    assert limited.exit_code == 0 and limited.stdout.splitlines()[0] == f"suite {SUITE}: the last 1 run(s) under {root}"
    assert THIRD in limited.stdout and FIRST not in limited.stdout
    assert (
        invoke("--root", str(root), "--suite", "modern").stdout == f"no runs recorded under {root} for suite modern\n"
    )


def test_optbench_runs_on_a_bad_root_says_so_in_one_line(tmp_path):
    result = invoke("--root", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.output
        == f"Error: {tmp_path / 'nowhere'}: no such folder of runs (give --root, or history_root: in --config)\n"
    )
