"""Step cost: every variant's training step timed alone after training, so a trial's cost does not
depend on what trained beside it.

Used by: steps, host (`optbench estimate` times the steps of a suite before it runs).
"""
