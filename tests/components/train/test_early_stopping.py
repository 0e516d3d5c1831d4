"""The median stopping rule: the decision, the board the trials share, and a trial it stops."""

from __future__ import annotations

import json

import pytest
from helpers import single_trial

from optbench.components.init_model.init_model import run_init_model
from optbench.components.train.early_stopping import board_of, post, read_others, should_stop
from optbench.components.train.train import run_train

RULE = {"grace_epochs": 2, "min_trials": 3}


@pytest.mark.parametrize(
    "own, others, stops_below",
    [
        ([0.1, 0.2], [[0.9, 0.9]] * 3, None),  # within the grace period: always goes on
        ([0.1, 0.2, 0.3], [[0.9, 0.9, 0.9]] * 2, None),  # two others at this epoch: too few to judge
        ([0.1, 0.2, 0.3], [[0.9, 0.9, 0.9], [0.8, 0.8, 0.8], [0.5, 0.5, 0.5], [0.9, 0.9]], 0.8),
        ([0.1, 0.2, 0.8], [[0.9, 0.9, 0.9], [0.8, 0.8, 0.8], [0.5, 0.5, 0.5]], None),  # at the median: goes on
        ([0.1, 0.2, None], [[0.9, 0.9, 0.9], [0.8, 0.8, 0.8], [0.5, 0.5, None], [0.6, 0.6, 0.6]], 0.8),
    ],
)
def test_below_the_median_of_the_others_at_the_same_epoch_after_the_grace_period(own, others, stops_below):
    assert should_stop(own, others, RULE) == (None if stops_below is None else pytest.approx(stops_below))


def test_the_board_holds_each_trial_once_and_skips_what_it_did_not_write(tmp_path):
    board = board_of(str(tmp_path / "run" / "init-model" / "initial"))
    assert board == str(tmp_path / "run" / "init-model" / "early-stopping")
    post(board, "adam.s0", [0.5])
    post(board, "adam.s0", [0.5, 0.7])  # replaced whole, never appended
    post(board, "sgd.s0", [0.3, float("nan")])
    (tmp_path / "run" / "init-model" / "early-stopping" / "junk.json").write_text("{not json")
    (tmp_path / "run" / "init-model" / "early-stopping" / "list.json").write_text(json.dumps([1, 2]))
    assert sorted(read_others(board, "rmsprop.s0")) == [[0.3, None], [0.5, 0.7]]
    assert read_others(board, "adam.s0") == [[0.3, None]]


def test_a_trial_below_the_others_median_stops_and_says_so(tiny_dataset, tmp_path):
    initial = tmp_path / "initial"
    run_init_model("mlp", seed=0, output_dir=str(initial))
    board = str(tmp_path / "board")
    for name in ("a.s0", "b.s0", "c.s0"):  # three trials that did better at every epoch
        post(board, name, [0.99, 0.99, 0.99, 0.99])
    history = run_train(
        str(tiny_dataset),
        str(initial),
        str(tmp_path / "model"),
        single_trial("sgd", learning_rate=0.001),
        epochs=4,
        early_stopping={"grace_epochs": 1, "min_trials": 3},
        board=board,
    )
    assert history["status"] == "stopped" and history["stopped_at_epoch"] == 2
    assert history["stopped_below_median"] == 0.99 and len(history["epochs"]) == 2
    assert [0.99] * 4 in read_others(board, "sgd.s0") and len(read_others(board, "a.s0")) == 3
