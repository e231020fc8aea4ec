"""Regularisers of the velocity model, by name: a prior on v besides the physics and the data.

Each maps nondimensional v (n,) and its gradient (n, 2) at the collocation points, a scale beta and a
reference velocity (a trainable scalar, starting at 1) to a scalar. They are reported as an extra term,
never folded into the paper's three loss components.

- smoothness: mean |grad v|^2 (Tikhonov, first order): smooth models.
- tv: mean sqrt(|grad v|^2 + beta^2) (total variation): piecewise-constant models with sharp edges.
- support: mean (v - r)^2 / ((v - r)^2 + beta^2) (minimum support; Last & Kubik 1983, Portniaguine &
  Zhdanov 1999): the area where v departs from the background r is what costs, not the size of the
  departure, so anomalies come out compact and with full contrast instead of smeared along the rays.
  The background r trains with the networks: it settles on the most common velocity, so no background
  has to be known in advance.
- gradient_support: mean |grad v|^2 / (|grad v|^2 + beta^2) (minimum gradient support): the area of
  non-zero gradient costs, giving blocky models with sharp boundaries.
"""

from __future__ import annotations

import tensorflow as tf

# Each regulariser (registered by name in pinn/plugins.py) maps (v, grad v, beta, reference velocity) to a penalty.


def _grad2(grad_v: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.square(grad_v), axis=1)


def none(v: tf.Tensor, grad_v: tf.Tensor, beta: float, ref: tf.Tensor) -> tf.Tensor:
    return tf.zeros([], v.dtype)


def smoothness(v: tf.Tensor, grad_v: tf.Tensor, beta: float, ref: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(_grad2(grad_v))


def tv(v: tf.Tensor, grad_v: tf.Tensor, beta: float, ref: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.sqrt(_grad2(grad_v) + beta**2))


def support(v: tf.Tensor, grad_v: tf.Tensor, beta: float, ref: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(v - ref) / (tf.square(v - ref) + beta**2))


def gradient_support(v: tf.Tensor, grad_v: tf.Tensor, beta: float, ref: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(_grad2(grad_v) / (_grad2(grad_v) + beta**2))
