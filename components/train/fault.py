"""Tell a numerical fault of an optimizer from divergence, once a trial's loss has gone non-finite.

Training looks at the loss once an epoch (a look per step would make Keras
wait on every step), so an epoch that ends non-finite says only that
something went wrong in it. The trial is then replayed step by step from its
initial weights, with its optimizer, seed and data order, up to the end of
that epoch: the first step after which a weight is non-finite (or the loss is, or
has exploded), which weight,
and the losses before it. If the loss had never risen above the first step's
before that, the model was training normally and the optimizer's update
itself produced the non-finite number (an underflow, a 0/0): a numerical
fault of that optimizer's implementation, which says nothing about how the
optimizer trains. If the loss climbed first, or itself went non-finite or
exploded while the weights were still finite (their outputs overflowed: the
weights had grown), it diverged.

A replay costs at most what the trial's training cost, and only a trial that
ended non-finite pays it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    """What the step-by-step replay of a trial found: where it first went non-finite, and how the loss went."""

    step: int  # 1-based, counted over the whole training
    weight: str | None  # the first trainable weight that was non-finite after that step (None: only the loss was)
    loss_rose: bool  # some step's loss before it was higher than the first step's

    @property
    def numerical_fault(self) -> bool:
        return not self.loss_rose

    def as_dict(self) -> dict:
        return asdict(self)


def replay(build: Callable[[], Any], batches: Iterable[tuple], exploded: float) -> Replayed | None:
    """Train the compiled model `build()` returns on `batches`, one step at a time, until a weight is non-finite
    or a loss is non-finite or at least `exploded`; None if that never happens (the replay did not reproduce
    what training saw)."""
    import numpy as np

    model = build()
    first: float | None = None
    rose = False
    for step, (x, y) in enumerate(batches, start=1):
        model.reset_metrics()  # the loss of this step alone, not the running mean
        loss = float(np.asarray(model.train_on_batch(x, y)))  # before this step's update
        # An infinite or exploded loss rose, from finite weights; so did a NaN one (finite weights whose outputs
        # overflow): the weights had grown first.
        if not (math.isfinite(loss) and loss < exploded):
            weight = _first_non_finite(model)
            log.info("replay: the loss went non-finite or exploded at step %d", step)
            return Replayed(step, weight, loss_rose=True)
        first = loss if first is None else first
        rose = rose or loss > first
        weight = _first_non_finite(model)
        if weight:
            log.info("replay: %s non-finite after step %d", weight, step)
            return Replayed(step, weight, rose)
    return None


def _first_non_finite(model) -> str | None:
    import numpy as np

    return next((v.path for v in model.trainable_variables if not np.isfinite(np.asarray(v)).all()), None)
