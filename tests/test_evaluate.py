"""The evaluate step: one TFMA run over real models trained briefly on genuine MNIST digits.

The numbers TFMA reports are checked against a direct computation from each
model's own predictions on the same 500 test digits.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from components.common.schema import EVAL_SUMMARY_FILE, NUM_CLASSES
from components.common.beam import pipeline_args
from components.evaluate.evaluate import evaluate, load_summary

TEST_EXAMPLES = 500  # the tiny_dataset's test split


def _train(dataset_dir, optimizer, seed: int = 0):
    """A small MLP fitted for one epoch on the 1,000 training digits (no optimizer: left untrained)."""
    import keras

    from components.train.data import batches, load_split
    from components.train.models import build

    keras.utils.set_random_seed(seed)
    model = build("mlp")
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.fit(batches(load_split(str(dataset_dir), "train"), 32, shuffle_seed=seed), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dataset):
    """Three models (baseline sgd with a tiny step, adam, untrained), their direct predictions, one evaluate."""
    import keras

    from components.train.data import batches, load_split
    from components.train.export import export_saved_model

    root = tmp_path_factory.mktemp("evaluate")
    test = load_split(str(tiny_dataset), "test")
    labels = np.concatenate([y.numpy() for _, y in batches(test, 1000)])
    trained = {"sgd": _train(tiny_dataset, keras.optimizers.SGD(1e-4)),
               "adam": _train(tiny_dataset, keras.optimizers.Adam(1e-3)),
               "untrained": _train(tiny_dataset, None, seed=1)}
    paths, probs = {}, {}
    for name, model in trained.items():
        paths[name] = export_saved_model(model, str(root / name / "saved_model"))
        probs[name] = model.predict(batches(test, 1000), verbose=0)
    accuracy = {name: float(np.mean(p.argmax(1) == labels)) for name, p in probs.items()}
    worse = max(accuracy["sgd"], accuracy["untrained"])
    assert accuracy["adam"] > worse + 0.1, accuracy  # the data must tell the models apart
    min_accuracy = (accuracy["adam"] + worse) / 2
    output = root / "evaluation"
    summary = evaluate(paths, str(tiny_dataset), str(output), baseline="sgd", min_accuracy=min_accuracy)
    return {"summary": summary, "output": output, "paths": paths, "probs": probs, "labels": labels,
            "accuracy": accuracy, "min_accuracy": min_accuracy}


def test_summary_has_every_model_and_every_test_example(run):
    summary = run["summary"]
    assert summary["baseline"] == "sgd"
    assert list(summary["models"]) == ["sgd", "adam", "untrained"]
    assert summary["test_examples"] == TEST_EXAMPLES
    for m in summary["models"].values():
        assert m["example_count"] == TEST_EXAMPLES
        assert set(m) == {"example_count", "accuracy", "loss", "top3_accuracy", "accuracy_diff_vs_baseline",
                          "blessed", "per_label_accuracy", "confusion_matrix"}
        assert all(type(m[k]) is float for k in ("accuracy", "loss", "top3_accuracy"))


def test_metrics_match_the_models_own_predictions(run):
    labels = run["labels"]
    for name, p in run["probs"].items():
        m = run["summary"]["models"][name]
        assert m["accuracy"] == pytest.approx(run["accuracy"][name], abs=1e-6)
        top3 = np.mean([label in np.argsort(row)[-3:] for row, label in zip(p, labels)])
        assert m["top3_accuracy"] == pytest.approx(top3, abs=1e-6)
        loss = -np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-7, 1.0)))
        assert m["loss"] == pytest.approx(loss, rel=1e-4)


def test_confusion_matrix_and_per_label_accuracy(run):
    labels = run["labels"]
    for name, p in run["probs"].items():
        m = run["summary"]["models"][name]
        expected = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
        np.add.at(expected, (labels, p.argmax(1)), 1)
        matrix = np.array(m["confusion_matrix"])
        assert matrix.tolist() == expected.tolist()
        assert matrix.sum() == TEST_EXAMPLES
        assert np.trace(matrix) / TEST_EXAMPLES == pytest.approx(m["accuracy"], abs=1e-6)
        assert list(m["per_label_accuracy"]) == [str(d) for d in range(NUM_CLASSES)]
        for d in range(NUM_CLASSES):
            assert m["per_label_accuracy"][str(d)] == pytest.approx(matrix[d, d] / matrix[d].sum(), abs=1e-6)


def test_diff_against_the_baseline(run):
    models = run["summary"]["models"]
    assert models["sgd"]["accuracy_diff_vs_baseline"] is None
    for name in ("adam", "untrained"):
        assert models[name]["accuracy_diff_vs_baseline"] == pytest.approx(
            models[name]["accuracy"] - models["sgd"]["accuracy"], abs=1e-6)
    assert models["adam"]["accuracy_diff_vs_baseline"] > 0.1


def test_blessed_follows_min_accuracy(run):
    # The bound lies between adam and the two others: TFMA fails the untrained candidate, and the
    # baseline (which TFMA never validates) fails the same bound on its own accuracy.
    models = run["summary"]["models"]
    assert {name: m["blessed"] for name, m in models.items()} == {"sgd": False, "adam": True, "untrained": False}
    assert all((m["accuracy"] >= run["min_accuracy"]) == m["blessed"] for m in models.values())
    assert run["summary"]["validation_ok"] is False


def test_summary_on_disk_is_the_returned_one(run):
    assert (run["output"] / EVAL_SUMMARY_FILE).is_file()
    assert load_summary(str(run["output"])) == run["summary"]
    for prefix in ("metrics", "plots", "validations"):  # TFMA's own output, beside the summary
        assert list((run["output"] / "tfma").glob(f"{prefix}*.tfrecord")), prefix


def test_one_model_and_an_absent_baseline(run, tiny_dataset, tmp_path, caplog):
    """A baseline that was not trained is dropped with a warning; a lone model still gets its metrics."""
    with caplog.at_level(logging.WARNING, logger="components.evaluate.evaluate"):
        summary = evaluate({"adam": run["paths"]["adam"]}, str(tiny_dataset), str(tmp_path), baseline="sgd")
    assert "baseline 'sgd' is not among the models" in caplog.text
    assert summary["baseline"] is None and summary["validation_ok"] is True
    adam = summary["models"]["adam"]
    assert adam["accuracy_diff_vs_baseline"] is None and adam["blessed"] is True
    assert adam["accuracy"] == pytest.approx(run["summary"]["models"]["adam"]["accuracy"], abs=1e-6)
    assert adam["confusion_matrix"] == run["summary"]["models"]["adam"]["confusion_matrix"]


def test_bad_inputs_fail_early_and_name_the_path(run, tiny_dataset, tmp_path):
    out = tmp_path / "evaluation"
    with pytest.raises(ValueError, match=str(tiny_dataset)):
        evaluate({}, str(tiny_dataset), str(out))
    missing = tmp_path / "nowhere" / "saved_model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        evaluate({"sgd": run["paths"]["sgd"], "adam": str(missing)}, str(tiny_dataset), str(out))
    empty = tmp_path / "empty_dataset"
    with pytest.raises(FileNotFoundError, match=str(empty / "test")):
        evaluate({"sgd": run["paths"]["sgd"]}, str(empty), str(out))
    assert not out.exists()


def test_beam_runner_defaults_to_fnapi_unless_given():
    assert pipeline_args(None) == ["--runner=FnApiRunner"]
    assert pipeline_args(["--direct_num_workers=2"]) == ["--runner=FnApiRunner", "--direct_num_workers=2"]
    dataflow = ["--runner", "DataflowRunner", "--project=p", "--region=europe-west1"]
    assert pipeline_args(dataflow) == dataflow
