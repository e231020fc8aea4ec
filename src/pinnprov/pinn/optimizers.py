"""First-order optimisers on tf.Variables for the compiled hot loop (registered by name in pinnprov/pinn/plugins.py).

Why not Keras optimisers: these few lines keep every state variable explicit (so a run is reproducible
bit for bit and XLA sees plain assignments) and take the learning rate as a tensor computed from the
steerable schedule at each step. The update rules and defaults match tf.keras (Adam: beta1 0.9, beta2 0.999,
epsilon 1e-7 with bias correction; RMSprop: rho 0.9, epsilon 1e-7, no momentum).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import tensorflow as tf


class Optimizer(Protocol):
    def apply(self, gradients: Sequence[tf.Tensor], learning_rate: tf.Tensor) -> None: ...


class Adam(tf.Module):
    def __init__(self, variables: Sequence[tf.Variable], beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(name="adam")
        self._variables = list(variables)
        self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon
        self._m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._variables]
        self._v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._variables]
        self._t = tf.Variable(0.0, trainable=False, dtype=tf.float32)

    def apply(self, gradients: Sequence[tf.Tensor], learning_rate: tf.Tensor) -> None:
        t = self._t.assign_add(1.0)
        # Bias correction folded into the step size, as in Kingma & Ba (2015), Section 2.
        alpha = learning_rate * tf.sqrt(1.0 - self._beta2**t) / (1.0 - self._beta1**t)
        for variable, gradient, m, v in zip(self._variables, gradients, self._m, self._v, strict=True):
            m.assign(self._beta1 * m + (1.0 - self._beta1) * gradient)
            v.assign(self._beta2 * v + (1.0 - self._beta2) * tf.square(gradient))
            variable.assign_sub(alpha * m / (tf.sqrt(v) + self._epsilon))


class RMSprop(tf.Module):
    def __init__(self, variables: Sequence[tf.Variable], rho: float = 0.9, epsilon: float = 1e-7) -> None:
        super().__init__(name="rmsprop")
        self._variables = list(variables)
        self._rho, self._epsilon = rho, epsilon
        self._ms = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._variables]

    def apply(self, gradients: Sequence[tf.Tensor], learning_rate: tf.Tensor) -> None:
        for variable, gradient, ms in zip(self._variables, gradients, self._ms, strict=True):
            ms.assign(self._rho * ms + (1.0 - self._rho) * tf.square(gradient))
            variable.assign_sub(learning_rate * gradient / (tf.sqrt(ms) + self._epsilon))
