"""The evaluate step: real TFMA runs over real models trained briefly on genuine MNIST digits.

Every number TFMA reports is checked against a direct computation from each
model's own predictions on the same 500 test digits, and the thresholds are
set from those numbers so that each blessing decision is known in advance.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from helpers import MULTI_PROCESS_BEAM_ARGS, bucket_files
from scipy.stats import rankdata

from optbench.bench.evaluation import bench_evaluation, keras_metrics
from optbench.components.evaluate.evaluate import run_evaluate
from optbench.components.shared import predictions
from optbench.components.shared.files import read_json
from optbench.components.shared.schema import (
    EVAL_SUMMARY_FILE,
    HISTORY_FILE,
    NUM_CLASSES,
    PREDICTIONS_FILE,
    SCORED_FILE,
    STATS_FILE,
    STEP_COST_FILE,
    TFMA_DIR,
)

TEST_EXAMPLES = 500  # the tiny_dataset's test split


def _train(dataset_dir, optimizer, seed: int = 0):
    """A small MLP fitted for one epoch on the 1,000 training digits (no optimizer: left untrained)."""
    import keras

    from optbench.components.shared.models import build
    from optbench.components.shared.records import read_split

    keras.utils.set_random_seed(seed)
    model = build("mlp")
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.fit(*read_split(str(dataset_dir), "train"), batch_size=32, epochs=1, verbose=0)
    return model


def _diverged(dataset_dir):
    """A model whose weights went NaN, as a diverged optimizer leaves them."""
    model = _train(dataset_dir, None, seed=2)
    kernel = model.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    """Five exported models, their own test probabilities, and the test labels."""
    import keras

    from optbench.components.shared.records import read_split
    from optbench.components.train.export import export_saved_model

    root = tmp_path_factory.mktemp("models")
    images, labels = read_split(str(tiny_dataset), "test")
    models = {
        "adam.s0": _train(tiny_dataset, keras.optimizers.Adam(1e-3)),
        "rmsprop.s0": _train(tiny_dataset, keras.optimizers.RMSprop(1e-3)),
        "sgd.s0": _train(tiny_dataset, keras.optimizers.SGD(0.01)),
        "untrained.s1": _train(tiny_dataset, None, seed=1),
        "diverged.s0": _diverged(tiny_dataset),
    }
    paths, probs = {}, {}
    for name, model in models.items():
        paths[name] = export_saved_model(model, str(root / name / "saved_model"))
        probs[name] = model.predict(images, batch_size=1000, verbose=0)
    accuracy = {name: float(np.mean(p.argmax(1) == labels)) for name, p in probs.items() if name != "diverged.s0"}
    return {"paths": paths, "probs": probs, "labels": labels, "accuracy": accuracy}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dataset, trained):
    """One TFMA run of all five with adam as the baseline and thresholds that split them three ways:
    rmsprop passes both; sgd clears the minimum but drops too far below adam; untrained fails both."""
    acc = trained["accuracy"]
    # The data must tell the models apart for the thresholds below to mean something.
    assert acc["rmsprop.s0"] > acc["sgd.s0"] + 0.1 and acc["sgd.s0"] > acc["untrained.s1"] + 0.1, acc
    assert abs(acc["adam.s0"] - acc["rmsprop.s0"]) < 0.05, acc
    thresholds = {
        "min_accuracy": (acc["sgd.s0"] + acc["untrained.s1"]) / 2,
        "max_drop_vs_baseline": round(acc["adam.s0"] - (acc["rmsprop.s0"] + acc["sgd.s0"]) / 2, 4),
    }
    if acc["rmsprop.s0"] < acc["adam.s0"]:
        assert acc["adam.s0"] - acc["rmsprop.s0"] < thresholds["max_drop_vs_baseline"]
    output = tmp_path_factory.mktemp("evaluation")
    summary = run_evaluate(trained["paths"], str(tiny_dataset), str(output), baseline="adam.s0", thresholds=thresholds)
    return {**trained, "summary": summary, "output": output, "thresholds": thresholds}


def test_summary_has_every_model_and_every_test_example(run):
    summary = run["summary"]
    assert summary["baseline"] == "adam.s0" and summary["thresholds"] == run["thresholds"]
    assert list(summary["models"]) == list(run["paths"])
    assert summary["test_examples"] == TEST_EXAMPLES
    assert summary["predictions"] == PREDICTIONS_FILE and summary["tfma_seconds"] > 0
    assert summary["calibration"] is False and summary["auc"] is False
    for m in summary["models"].values():
        assert m["example_count"] == TEST_EXAMPLES
        assert m["macro_auc"] is None and m["calibration"] is None  # opt-in, off by default
    for name in run["accuracy"]:
        assert all(type(summary["models"][name][k]) is float for k in ("accuracy", "loss", "top3_accuracy"))


def test_metrics_match_the_models_own_predictions(run):
    labels = run["labels"]
    for name in run["accuracy"]:
        p, m = run["probs"][name], run["summary"]["models"][name]
        assert m["accuracy"] == pytest.approx(run["accuracy"][name], abs=1e-6)
        top3 = np.mean([label in np.argsort(row)[-3:] for row, label in zip(p, labels)])
        assert m["top3_accuracy"] == pytest.approx(top3, abs=1e-6)
        loss = -np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-7, 1.0)))
        assert m["loss"] == pytest.approx(loss, rel=1e-4)


def test_per_label_slices_and_confusion_matrices(run):
    labels = run["labels"]
    for name in run["accuracy"]:
        m = run["summary"]["models"][name]
        expected = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
        np.add.at(expected, (labels, run["probs"][name].argmax(1)), 1)
        matrix = np.array(m["confusion_matrix"])
        assert matrix.tolist() == expected.tolist()
        assert matrix.sum() == TEST_EXAMPLES
        assert np.trace(matrix) / TEST_EXAMPLES == pytest.approx(m["accuracy"], abs=1e-6)
        assert list(m["per_label_accuracy"]) == [str(d) for d in range(NUM_CLASSES)]
        for d in range(NUM_CLASSES):  # TFMA's per-label slice = the confusion matrix's row
            assert m["per_label_accuracy"][str(d)] == pytest.approx(matrix[d, d] / matrix[d].sum(), abs=1e-6)


def test_diff_against_the_configured_baseline(run):
    models = run["summary"]["models"]
    assert models["adam.s0"]["accuracy_diff_vs_baseline"] is None
    for name in ("rmsprop.s0", "sgd.s0", "untrained.s1"):
        assert models[name]["accuracy_diff_vs_baseline"] == pytest.approx(
            models[name]["accuracy"] - models["adam.s0"]["accuracy"], abs=1e-6
        )
    assert models["untrained.s1"]["accuracy_diff_vs_baseline"] < -0.2


def test_value_and_change_thresholds_decide_blessing(run):
    models, t = run["summary"]["models"], run["thresholds"]
    assert {name: m["blessed"] for name, m in models.items()} == {
        "adam.s0": True,
        "rmsprop.s0": True,
        "sgd.s0": False,
        "untrained.s1": False,
        "diverged.s0": False,
    }
    assert run["summary"]["validation_ok"] is False
    assert models["adam.s0"]["failed_thresholds"] == [] == models["rmsprop.s0"]["failed_thresholds"]
    # sgd clears the minimum: only the change threshold against adam fails it.
    (reason,) = models["sgd.s0"]["failed_thresholds"]
    assert models["sgd.s0"]["accuracy"] >= t["min_accuracy"]
    assert reason.startswith("accuracy -") and f"allowed change {-t['max_drop_vs_baseline']:+g}" in reason
    reasons = models["untrained.s1"]["failed_thresholds"]
    assert len(reasons) == 2 and any(f"below the minimum {t['min_accuracy']:g}" in r for r in reasons)


def test_diverged_model_is_evaluated_but_never_blessed(run):
    m = run["summary"]["models"]["diverged.s0"]
    assert np.isnan(run["probs"]["diverged.s0"]).all()
    assert m["finite_predictions"] is False and m["blessed"] is False
    assert m["failed_thresholds"][0] == "non-finite outputs (the model diverged)"
    assert m["loss"] is None  # NaN becomes null, never NaN in the JSON
    assert all(run["summary"]["models"][n]["finite_predictions"] for n in run["accuracy"])


def test_predictions_file_pairs_every_model_on_the_same_examples(run):
    p = predictions.load(run["output"] / PREDICTIONS_FILE)
    assert p.labels.shape == (TEST_EXAMPLES,) and sorted(p.labels.tolist()) == sorted(run["labels"].tolist())
    assert list(p.predicted) == list(run["paths"])
    # TFRecord order is not the tf.data order above, so compare through the accuracy and the confusion matrix.
    for name in run["accuracy"]:
        assert p.finite(name)
        accuracy = run["summary"]["models"][name]["accuracy"]
        assert p.correct(name).mean() == pytest.approx(accuracy, abs=1e-6)  # TFMA computes in float32
        matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
        np.add.at(matrix, (p.labels, p.predicted[name]), 1)
        assert matrix.tolist() == run["summary"]["models"][name]["confusion_matrix"]
    assert not p.finite("diverged.s0") and not p.correct("diverged.s0").any()


def test_evaluate_from_and_to_gs_with_workers_that_share_no_memory_gives_the_same_evaluation(run, tiny_dataset, gcs):
    """The dataset and the output at gs:// URIs (storage emulator), Beam's multi-process runner: TFMA's workers read
    the scored examples and write their output through Beam's GCS client; TensorFlow reads only local copies."""
    _, bucket = gcs
    for path in tiny_dataset.rglob("*"):
        if path.is_file():
            bucket.blob(f"run/dataset/{path.relative_to(tiny_dataset)}").upload_from_filename(str(path))
    summary = run_evaluate(
        run["paths"],
        f"gs://{bucket.name}/run/dataset",
        f"gs://{bucket.name}/run/evaluation",
        baseline="adam.s0",
        thresholds=run["thresholds"],
        beam_args=MULTI_PROCESS_BEAM_ARGS,
    )
    timing = ("tfma_seconds",)
    assert {k: v for k, v in summary.items() if k not in timing} == {
        k: v for k, v in run["summary"].items() if k not in timing
    }
    remote = bucket_files(bucket, "run/evaluation/")
    assert json.loads(remote[EVAL_SUMMARY_FILE]) == summary
    assert remote[PREDICTIONS_FILE] == (run["output"] / PREDICTIONS_FILE).read_bytes()
    assert remote[SCORED_FILE] == (run["output"] / SCORED_FILE).read_bytes()

    def kinds(names):  # metrics-00000-of-00002.tfrecord -> metrics: the workers may shard TFMA's output
        return {name.split("/")[-1].split("-")[0].split(".")[0] for name in names}

    remote_tfma = kinds(name for name in remote if name.startswith(f"{TFMA_DIR}/"))
    assert remote_tfma == kinds(p.name for p in (run["output"] / TFMA_DIR).iterdir())
    assert {"eval_config", "metrics", "plots", "validations"} < remote_tfma


def test_summary_on_disk_is_the_returned_one(run):
    assert (run["output"] / EVAL_SUMMARY_FILE).is_file()
    assert read_json(run["output"] / EVAL_SUMMARY_FILE) == run["summary"]
    for prefix in ("metrics", "plots", "validations"):  # TFMA's own output, beside the summary
        assert list((run["output"] / "tfma").glob(f"{prefix}*.tfrecord")), prefix


def test_the_report_reads_this_evaluation(run, tmp_path):
    """The contract between the steps: the report finds every trial of summary.json and predictions.npz,
    takes the NaN model for diverged, and tests the best against the others on these predictions."""
    from optbench.components.report.report import run_report

    model_dirs = []
    for trial in run["paths"]:
        variant = trial.split(".s")[0]
        diverged = variant == "diverged"
        # One seed for all, so that every pair shares it (variants are paired by seed).
        history = {
            "trial": trial,
            "variant": variant,
            "optimizer": variant,
            "seed": 0,
            "model": "mlp",
            "status": "diverged" if diverged else "ok",
            "diverged_at_epoch": 1 if diverged else None,
            "train_seconds": 2.0,
            "epochs": [
                {
                    "epoch": 1,
                    "loss": None if diverged else 1.0,
                    "val_loss": None if diverged else 1.0,
                    "seconds": 2.0,
                    "val_accuracy": None if diverged else 0.5,
                }
            ],
        }
        model_dirs.append(tmp_path / "models" / trial)
        model_dirs[-1].mkdir(parents=True)
        (model_dirs[-1] / HISTORY_FILE).write_text(json.dumps(history))
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / STATS_FILE).write_text("{}")
    (tmp_path / "step_cost").mkdir()
    (tmp_path / "step_cost" / STEP_COST_FILE).write_text(json.dumps({"variants": {}}))
    rows = run_report(
        str(tmp_path / "dataset"),
        [str(d) for d in model_dirs],
        str(run["output"]),
        str(tmp_path / "step_cost"),
        {},
        str(tmp_path / "report"),
    )
    named = {r["optimizer"]: r for r in rows}
    assert named["diverged"]["status"] == "diverged" and named["diverged"]["test_accuracy"] is None
    best = max((r for r in rows if r["test_accuracy"] is not None), key=lambda r: r["test_accuracy"])
    assert best["test_accuracy"] == pytest.approx(max(run["accuracy"].values()), abs=1e-6) and best["best"]
    sig = json.loads((tmp_path / "report" / "significance.json").read_text())
    assert sig["winner"] == best["optimizer"]
    assert {c["other"] for c in sig["comparisons"]} == {t.split(".s")[0] for t in run["accuracy"]} - {best["optimizer"]}
    assert all(c["test"] == "mcnemar-exact" for c in sig["comparisons"])
    by_other = {c["other"]: c for c in sig["comparisons"]}
    assert by_other["untrained"]["significant"] and by_other["sgd"]["significant"]  # 0.78 against 0.14 and 0.38
    assert (tmp_path / "report" / "report.html").is_file()


def _macro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """One-vs-rest AUC per class (Mann-Whitney), averaged over the classes."""
    aucs = []
    for k in range(NUM_CLASSES):
        positive = labels == k
        ranks = rankdata(probs[:, k])
        n_pos, n_neg = positive.sum(), (~positive).sum()
        aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def test_calibration_and_auc_when_asked(trained, tiny_dataset, tmp_path):
    names = ("adam.s0", "sgd.s0")
    summary = run_evaluate(
        {n: trained["paths"][n] for n in names},
        str(tiny_dataset),
        str(tmp_path),
        baseline="sgd.s0",
        calibration=True,
        auc=True,
    )
    assert summary["calibration"] is True and summary["auc"] is True
    labels = trained["labels"]
    for name in names:
        probs, m = trained["probs"][name], summary["models"][name]
        assert m["macro_auc"] == pytest.approx(_macro_auc(probs, labels), abs=2e-3)  # TFMA bins thresholds
        confidence, correct = probs.max(1), probs.argmax(1) == labels
        bins = np.minimum((confidence * 10).astype(int), 9)
        ece = sum(
            abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).sum() for b in np.unique(bins)
        ) / len(labels)
        cal = m["calibration"]
        assert cal["ece"] == pytest.approx(ece, abs=1e-4)
        assert sum(b["count"] for b in cal["bins"]) == TEST_EXAMPLES
        assert [b["count"] for b in cal["bins"]] == [int((bins == b).sum()) for b in np.unique(bins)]


def test_bench_times_the_step_against_the_plain_evaluation_of_the_same_work(trained, tiny_dataset, tmp_path):
    names = ("adam.s0", "sgd.s0")
    result = bench_evaluation({n: trained["paths"][n] for n in names}, str(tiny_dataset), str(tmp_path))
    assert (result["models"], result["examples"]) == (2, TEST_EXAMPLES)
    assert result["evaluate_seconds"] > result["tfma_seconds"] > 0 and result["keras_seconds"] > 0
    assert result["ratio"] == pytest.approx(result["evaluate_seconds"] / result["keras_seconds"])
    assert result["max_accuracy_difference"] < 1e-6 and result["max_loss_difference"] < 1e-4  # the same numbers


def test_plain_metrics_are_the_summary_numbers(run):
    for name in run["accuracy"]:
        plain, m = keras_metrics(run["probs"][name], run["labels"]), run["summary"]["models"][name]
        assert plain["confusion_matrix"] == m["confusion_matrix"]
        for key in ("accuracy", "top3_accuracy"):
            assert plain[key] == pytest.approx(m[key], abs=1e-6)
        assert plain["loss"] == pytest.approx(m["loss"], rel=1e-4)
        assert plain["per_label_accuracy"] == pytest.approx(m["per_label_accuracy"], abs=1e-6)


def test_one_model_and_an_absent_baseline(run, tiny_dataset, tmp_path, caplog):
    """A baseline that was not trained is dropped with a warning; a lone model still gets its metrics."""
    with caplog.at_level(logging.WARNING, logger="components.evaluate.evaluate"):
        summary = run_evaluate(
            {"adam.s0": run["paths"]["adam.s0"]},
            str(tiny_dataset),
            str(tmp_path),
            baseline="sgd.s0",
            thresholds={"max_drop_vs_baseline": 0.01},
        )
    assert "baseline 'sgd.s0' is not among the models" in caplog.text
    assert summary["baseline"] is None and summary["validation_ok"] is True
    adam = summary["models"]["adam.s0"]
    assert adam["accuracy_diff_vs_baseline"] is None and adam["blessed"] is True
    assert adam["accuracy"] == pytest.approx(run["summary"]["models"]["adam.s0"]["accuracy"], abs=1e-6)
    assert adam["confusion_matrix"] == run["summary"]["models"]["adam.s0"]["confusion_matrix"]


def test_bad_inputs_fail_early_and_name_the_path(run, tiny_dataset, tmp_path):
    out = tmp_path / "evaluation"
    with pytest.raises(ValueError, match=str(tiny_dataset)):
        run_evaluate({}, str(tiny_dataset), str(out), None)
    with pytest.raises(ValueError, match="unknown threshold.*max_drop_vs_baseline"):
        run_evaluate({"sgd.s0": run["paths"]["sgd.s0"]}, str(tiny_dataset), str(out), None, {"min_acc": 0.5})
    missing = tmp_path / "nowhere" / "saved_model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        run_evaluate({"sgd.s0": run["paths"]["sgd.s0"], "adam.s0": str(missing)}, str(tiny_dataset), str(out), None)
    empty = tmp_path / "empty_dataset"
    with pytest.raises(FileNotFoundError, match=str(empty / "test")):
        run_evaluate({"sgd.s0": run["paths"]["sgd.s0"]}, str(empty), str(out), None)
    assert not out.exists()
