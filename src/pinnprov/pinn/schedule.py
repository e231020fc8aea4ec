"""Learning-rate schedules driven by tf.Variables, so steering can change them without retracing.

lr(step) = base * f(step), with `base` a tf.Variable. A steering `set_lr` rescales `base` so the rate in
effect becomes the requested value and the schedule keeps decaying from there; `scale_lr` multiplies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from pinnprov.pinn.plugins import SCHEDULES

# A schedule (registered by name in pinnprov/pinn/plugins.py) maps (step, decay_rate, decay_steps, staircase) to the
# factor multiplying the base rate.


def exponential_decay(step: tf.Tensor, decay_rate: float, decay_steps: int, staircase: bool) -> tf.Tensor:
    """decay_rate ** (step / decay_steps), as tf.keras.optimizers.schedules.ExponentialDecay."""
    periods = tf.cast(step, tf.float32) / float(decay_steps)
    if staircase:
        periods = tf.floor(periods)
    return tf.pow(tf.constant(decay_rate, tf.float32), periods)


def constant(step: tf.Tensor, decay_rate: float, decay_steps: int, staircase: bool) -> tf.Tensor:
    return tf.ones([], tf.float32)


@dataclass
class LearningRate:
    """The schedule of one run: a base-rate variable plus a named decay function."""

    name: str
    initial: float
    decay_rate: float
    decay_steps: int
    staircase: bool = False

    def __post_init__(self) -> None:
        self._factor = SCHEDULES.get(self.name)
        self.base = tf.Variable(self.initial, dtype=tf.float32, trainable=False, name="lr_base")

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        """The rate in effect at optimiser step `step` (usable inside tf.function)."""
        return self.base * self._factor(step, self.decay_rate, self.decay_steps, self.staircase)

    def value(self, step: int) -> float:
        """The rate the float32 graph uses at `step`, as the shortest decimal that round-trips in float32."""
        return float(str(self(tf.constant(step, tf.int64)).numpy()))

    def set(self, step: int, rate: float) -> None:
        """Make the rate in effect at `step` equal `rate`; later steps keep decaying from there."""
        factor = float(self._factor(tf.constant(step, tf.int64), self.decay_rate, self.decay_steps, self.staircase))
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning rate must be finite and > 0, got {rate!r}")
        self.base.assign(rate / factor)

    def scale(self, factor: float) -> None:
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"learning-rate scale must be finite and > 0, got {factor!r}")
        self.base.assign(self.base * factor)
