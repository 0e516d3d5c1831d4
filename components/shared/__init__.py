"""What several steps share: the data contract and its file names, the model builders and the
initial-weights format, the optimizer registry, the training input, the predictions file, atomic file
writes, and what a run reads from outside.

Used by: steps, host (the CLI, the local runner and storage read and write the same files).
"""
