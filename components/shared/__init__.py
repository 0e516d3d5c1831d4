"""What several steps share: the data contract and its file names, the model builders and the
initial-weights format, the optimizer registry, the predictions file, and atomic file writes.

No step imports another step; steps import this package.
"""
