"""Benchmarks: `make bench` (python -m optbench.bench.run).

Each figure is a ratio against a baseline measured in the same run.
"""
