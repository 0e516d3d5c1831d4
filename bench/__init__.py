"""Benchmarks: `make bench` (python -m bench.run). Each figure is a ratio against a baseline measured in the same run."""
