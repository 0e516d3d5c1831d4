"""Training: the optimizer registry, the model zoo and one training run."""
