"""Keras 3's Adafactor with one guard, so that a gradient with zero rows and zero columns cannot write NaN.

Keras (3.15, keras/src/optimizers/adafactor.py) estimates the second moment of
a matrix's gradient from its factors, `v = r / mean(r) * c`, and divides the
gradient by `sqrt(v)`. A row whose inputs are zero for every example of the
batch (blank border pixels of a digit; a feature a ReLU never passes) has
`r = epsilon_1 = 1e-30`; a unit whose gradient is zero for every example (a
ReLU no example activates) has `c = 1e-30`. Where the two cross,
`v = 1e-60 / mean(r)`: below float32's range, it underflows to 0, the gradient
there is 0, and `0 / sqrt(0)` is NaN, which the update writes into the kernel
at the first step. The seed CNN on genuine MNIST digits meets both at its first
batch; the paper's factored form never divides 0 by 0 in exact arithmetic, so
this is a floating-point fault of the implementation, not a property of the
optimizer (PyTorch's Adafactor clamps the same estimate, pytorch/pytorch#129905;
Optax computes the two factors' inverse square roots separately).

The guard keeps every factored estimate at or above float32's smallest normal
number. Wherever Keras's estimate is representable the update is Keras's, bit
for bit; where it underflowed, a zero gradient gives a zero update, as the
exact arithmetic does. Checked by tests/components/shared/test_optimizers.py
against the stock class, so a Keras release that changes the update rule
fails there rather than silently here.
"""

from __future__ import annotations

import keras
from keras import ops

# The smallest positive normal float32: the floor of the second-moment estimate.
_FLOOR = 1.1754943508222875e-38


@keras.saving.register_keras_serializable(package="optbench")
class Adafactor(keras.optimizers.Adafactor):
    """keras.optimizers.Adafactor whose second-moment estimates never underflow to zero (see the module's text)."""

    def build(self, var_list):
        super().build(var_list)
        self._estimates = {id(v) for v in self._v}

    def assign(self, variable, value):
        # Keras's update_step assigns the estimate to its `v` slot, then reads the slot back to divide by sqrt(v).
        if id(variable) in self._estimates:
            value = ops.maximum(value, ops.cast(_FLOOR, variable.dtype))
        super().assign(variable, value)
