"""The report's tables as report.md shows them, and the table printed in the terminal, on the realistic run."""

from __future__ import annotations

import re

from report_inputs import CHARTS

from optbench.components.report.report import format_table


def test_efficiency_table_time_to_accuracy_and_memory(report):
    _, out = report
    md = (out / "report.md").read_text()
    section = md.split("## Cost")[1].split("## ")[0]
    assert (
        "| Optimizer | Cost to 0.95 | Cost to 0.97 | Cost to 0.98 | Cost to 0.99 | Total cost (m:ss) | Per step (ms) | "
        "Wall time, shared machine (m:ss) | Optimizer state (MiB) | State / parameters |"
    ) in section
    # adam: 844 steps of 30 ms an epoch; 0.98 at epoch 4 on seed 0 and epoch 3 on the others (mean 3.33).
    assert (
        "| adam | 0:25 (ep 1) | 0:51 (ep 2) | 1:24 (ep 3.33) | not reached | 2:32 | 30 | 6:46 | 10.59 | 2x |" in section
    )
    # sgd's seed 0 ends at 0.9696: 0.97 is reached by 2 of 3 seeds, the cost is their mean.
    assert (
        "| sgd | 1:01 (ep 3) | 2:02 (ep 6), 2/3 seeds | not reached | not reached | 2:02 | 24 | 6:16 | 0.00 | 0x |"
        in section
    )
    assert "| adadelta (diverged) | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 10.59 | 2x |" in section


def test_markdown_tables_settings_and_figures(report):
    _, out = report
    md = (out / "report.md").read_text()
    assert md.startswith("# Optimizer comparison: cnn (1,387,594 parameters) on MNIST (suite seed-004)")
    assert "| Optimizer | Val acc ep1 | Val loss ep1 | Val acc ep5 | Val loss ep5 | Val acc ep6 | Val loss ep6 |" in md
    assert "| adam | 0.9612 | 0.1532 | 0.9871 | 0.0703 | 0.9890 | 0.0642 | 2:32 |" in md
    # momentum's means are over seeds 0 and 1 (offsets -4e-4 and 0), its seed 2 having diverged.
    assert "| momentum (diverged 1/3) | 0.9398 | 0.2222 | 0.9739 | 0.1130 | 0.9758 | 0.1070 | 2:12 |" in md
    assert "| adadelta (diverged) | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert (
        "| Optimizer | Seeds | Test accuracy | 95% CI | Test loss | 95% CI | Top-3 accuracy | Calibration error | "
        "Diff vs baseline | Blessed | p vs best (Holm) |"
    ) in md
    assert (
        "| adam | 3 | 0.9885 | [0.9873, 0.9897] | 0.0488 | [0.0456, 0.0519] | 0.9975 | 0.0046 | +0.0183 | yes "
        "| best |" in md
    )
    # The smallest bootstrap p is 2/4001; Holm multiplies it by the four comparisons.
    assert re.search(r"\| sgd \| 3 \| 0\.9702 \| .* \| baseline \| yes \| 0\.0020 \|", md)
    assert "| adadelta (diverged) | 0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | no | n/a |" in md
    assert "Baseline: sgd." in md and "Minimum test accuracy: 0.95." in md
    assert "| train | 54,000 | 5,330-6,070 |" in md and "| test | 10,000 | 980-1,135 |" in md
    assert "| versions.tensorflow | 2.21.0 |" in md and "| seeds | 0, 1, 2 |" in md  # nested settings flattened
    assert "| note | &lt;script&gt;alert(1)&lt;/script&gt; \\| pipe |" in md  # no raw HTML, table intact
    assert "Trained on: CPU, with Keras on tensorflow." in md
    for name in CHARTS:
        assert f"]({name})" in md
    assert "nan" not in md.lower()


def test_significance_table_says_what_would_decide_an_undecided_pair(report):
    """rmsprop, undecided against adam at +0.0001, can be decided by no number of seeds on this test set; the pairs
    that are significant need nothing more."""
    _, out = report
    md = (out / "report.md").read_text()
    section = md.split("## Significance")[1].split("## ")[0]
    assert "| Equivalent (±0) | To decide (80% power) | Test |" in section
    assert re.search(r"\| rmsprop \| 3 \| \+0\.0001 \| .* \| no \| never \| paired bootstrap \|", section)
    for name in ("momentum", "sgd", "adagrad"):
        assert re.search(rf"\| {name} \| .* \| yes \| .* \| no \| n/a \| paired bootstrap \|", section)


def test_format_table_lists_every_variant_with_its_interval(report):
    rows, _ = report
    lines = format_table(rows).splitlines()
    assert len(lines) == 2 + len(rows) and len({len(line) for line in lines}) == 1  # fixed width
    assert "Test acc" in lines[0] and "95% CI" in lines[0] and "Test loss" in lines[0]
    for line, row in zip(lines[2:], rows):
        assert line.startswith(row["optimizer"])
    assert "0.9885" in lines[2] and "[0.9873, 0.9897]" in lines[2]


def test_a_run_of_one_or_five_epochs_shows_each_epochs_columns_once(report):
    rows, _ = report
    for epochs in (1, 5):
        short = [{**row, "epochs": epochs} for row in rows]
        header = format_table(short).splitlines()[0].split()
        assert header.count(f"ep{epochs}") == 2, "one accuracy and one loss column of that epoch"
        assert header.count("ep1") == header.count("ep5") == 2
