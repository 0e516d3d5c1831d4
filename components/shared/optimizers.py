"""The optimizer registry: every optimizer we compare, its defaults stated once.

Keys are the names users type (`--optimizers adam,sgd`). Defaults are Keras 3's
own, except where a seed document fixes them (SGD 0.01; momentum 0.9). The
registry imports no TensorFlow, so the CLI can validate a name instantly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    class_name: str  # <module>.<class_name>
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    # Keras's optimizers, but where Keras's own class has a fault we guard against: a subclass of it here.
    module: str = "keras.optimizers"

    @property
    def learning_rate(self) -> float:
        return float(self.params["learning_rate"])


_SPECS = [
    OptimizerSpec("sgd", "SGD", {"learning_rate": 0.01}, "plain mini-batch stochastic gradient descent"),
    OptimizerSpec("momentum", "SGD", {"learning_rate": 0.01, "momentum": 0.9}, "SGD with heavy-ball momentum 0.9"),
    OptimizerSpec(
        "nesterov", "SGD", {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}, "SGD with Nesterov momentum 0.9"
    ),
    OptimizerSpec("adagrad", "Adagrad", {"learning_rate": 0.001}, "per-parameter rates from summed squared gradients"),
    OptimizerSpec("adadelta", "Adadelta", {"learning_rate": 0.001}, "Adagrad with a decaying window"),
    OptimizerSpec("rmsprop", "RMSprop", {"learning_rate": 0.001}, "rates from a moving average of squared gradients"),
    OptimizerSpec("adam", "Adam", {"learning_rate": 0.001}, "momentum plus RMSprop-style scaling, bias-corrected"),
    OptimizerSpec("adamw", "AdamW", {"learning_rate": 0.001}, "Adam with decoupled weight decay"),
    OptimizerSpec("nadam", "Nadam", {"learning_rate": 0.001}, "Adam with Nesterov momentum"),
    OptimizerSpec("adamax", "Adamax", {"learning_rate": 0.001}, "Adam with the infinity norm"),
    OptimizerSpec(
        "lion",
        "Lion",
        {"learning_rate": 0.0001},
        "sign-of-momentum updates (Keras suggests 3-10x smaller lr than Adam)",
    ),
    OptimizerSpec("lamb", "Lamb", {"learning_rate": 0.001}, "layer-wise adaptive Adam for large batches"),
    OptimizerSpec(
        "adafactor",
        "Adafactor",
        {"learning_rate": 0.001},
        "factored second moments, small state",
        module="optbench.components.shared.adafactor",  # Keras's, guarded against 0/0 at zero rows and columns
    ),
    OptimizerSpec("muon", "Muon", {"learning_rate": 0.001}, "orthogonalised momentum for matrices, AdamW elsewhere"),
    OptimizerSpec("ftrl", "Ftrl", {"learning_rate": 0.001}, "follow-the-regularised-leader"),
]

REGISTRY: dict[str, OptimizerSpec] = {s.name: s for s in _SPECS}


def get_spec(name: str) -> OptimizerSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(REGISTRY)}") from None


def optimizer_class(name: str) -> type:
    """The Keras optimizer class that trains `name` (imports Keras)."""
    spec = get_spec(name)
    return getattr(importlib.import_module(spec.module), spec.class_name)


def build(name: str, **overrides: Any):
    """A fresh Keras optimizer instance (never shared between models)."""
    return optimizer_class(name)(**{**get_spec(name).params, **overrides})
