"""Activation functions (registered by name in pinn/plugins.py), each a factory that makes one layer's activation.

Why factories: adaptive activations (Jagtap et al. 2020) carry a trainable slope per layer, so every layer needs
its own instance; fixed ones simply return the same function. A factory returns either a plain callable or a
`tf.Module` (whose variables then train with the network).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

ActivationFn = Callable[[tf.Tensor], tf.Tensor]
# TensorFlow ships no type information (its functions are Any to mypy): each is given its type before it is returned.


def tanh() -> ActivationFn:
    function: ActivationFn = tf.tanh
    return function


def sine() -> ActivationFn:
    function: ActivationFn = tf.sin
    return function


def sigmoid() -> ActivationFn:
    function: ActivationFn = tf.sigmoid
    return function


def relu() -> ActivationFn:
    function: ActivationFn = tf.nn.relu
    return function


def swish() -> ActivationFn:
    function: ActivationFn = tf.nn.silu
    return function


class AdaptiveTanh(tf.Module):
    """tanh(n a x) with a trainable slope a per layer, initialised so that n a = 1 (plain tanh at start).

    The scale factor n speeds up the slope's own learning (Jagtap, Kawaguchi & Karniadakis 2020).
    """

    SCALE = 10.0

    def __init__(self) -> None:
        super().__init__(name="adaptive_tanh")
        self.slope = tf.Variable(1.0 / self.SCALE, dtype=tf.float32, name="slope")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.tanh(self.SCALE * self.slope * x)


adaptive_tanh = AdaptiveTanh
