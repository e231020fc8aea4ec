"""Every plug-in of the PINN by name: activations, optimisers, learning-rate schedules, residual forms, regularisers.

Why one TensorFlow-free table: a TrainConfig is validated against these names before anything heavy loads (a bad
flag fails in milliseconds, and a collector or a sweep driver can check configurations without TensorFlow).
Each entry names where its implementation lives; the module is imported on first `get` (pinnprov.core.registry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pinnprov.core.registry import Registry

if TYPE_CHECKING:
    import tensorflow as tf

    from pinnprov.pinn.optimizers import Optimizer

    ActivationFn = Callable[[tf.Tensor], tf.Tensor]
    ActivationFactory = Callable[[], ActivationFn]
    # (variables) -> an optimiser with apply(gradients, learning_rate)
    OptimizerFactory = Callable[[Sequence[tf.Variable]], Optimizer]
    # (step, decay_rate, decay_steps, staircase) -> the factor multiplying the base rate
    ScheduleFactor = Callable[[tf.Tensor, float, int, bool], tf.Tensor]
    # (|grad phi|^2, v) -> residual of |grad phi| = 1 / v
    ResidualForm = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    # (v, grad v, beta, reference velocity) -> penalty
    Regularizer = Callable[[tf.Tensor, tf.Tensor, float, tf.Tensor], tf.Tensor]

ACTIVATIONS: Registry[ActivationFactory] = Registry("activation")
for _name in ("tanh", "sine", "sigmoid", "relu", "swish", "adaptive_tanh"):
    ACTIVATIONS.lazy(_name, f"pinnprov.pinn.activations:{_name}")

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
OPTIMIZERS.lazy("adam", "pinnprov.pinn.optimizers:Adam")
OPTIMIZERS.lazy("rmsprop", "pinnprov.pinn.optimizers:RMSprop")

SCHEDULES: Registry[ScheduleFactor] = Registry("learning-rate schedule")
SCHEDULES.lazy("exponential_decay", "pinnprov.pinn.schedule:exponential_decay")
SCHEDULES.lazy("constant", "pinnprov.pinn.schedule:constant")

RESIDUAL_FORMS: Registry[ResidualForm] = Registry("residual form")
for _name in ("hamiltonian", "slowness", "velocity"):
    RESIDUAL_FORMS.lazy(_name, f"pinnprov.pinn.fee:{_name}_residual")

REGULARIZERS: Registry[Regularizer] = Registry("regularizer")
for _name in ("none", "smoothness", "tv", "support", "gradient_support"):
    REGULARIZERS.lazy(_name, f"pinnprov.pinn.regularizers:{_name}")
USES_REFERENCE = frozenset({"support"})
"""Regularisers that pull v towards a learned background velocity (the reference variable trains only for these)."""
