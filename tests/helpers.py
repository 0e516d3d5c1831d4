"""Helpers several test modules use."""

from __future__ import annotations

from typing import Any

from optbench.components.plan import suites


def single_trial(optimizer: str, seed: int = 0, batch_size: int = 64, **params: Any) -> dict:
    """One trial outside any suite, expanded as a suite of one would be: the optimizer's defaults plus `params`."""
    suite = suites.validate(
        {
            "optimizers": [{"name": optimizer, **params}],
            "batch_size": batch_size or "full",
            "seeds": [seed],
            "baseline": None,
        },
        source="trial",
    )
    (trial,) = suites.expand(suite)
    return trial
