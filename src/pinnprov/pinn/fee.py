"""The factored eikonal equation (FEE), Eq. (10) of the paper, and its residual.

With phi = tau * xi and xi = |xr - xs|, grad phi = tau grad xi + xi grad tau, and because xi grad xi = xr - xs
and |grad xi| = 1:

    |grad phi|^2 = tau^2 + 2 tau grad tau . (xr - xs) + |xr - xs|^2 |grad tau|^2.

This expanded form has no division by |xr - xs|, so it is finite at the source itself: the factorisation
moves the point-source singularity into xi, where it is known exactly, and tau stays smooth.
All quantities are nondimensional (see pinn.scaling), so |grad phi| = 1 / v.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from pinnprov.pinn.plugins import RESIDUAL_FORMS

TauFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
VelocityFn = Callable[[tf.Tensor], tf.Tensor]

def _norm(g2: tf.Tensor) -> tf.Tensor:
    # sqrt has an infinite derivative at 0; the floor only matters for a degenerate zero gradient
    return tf.sqrt(tf.maximum(g2, tf.constant(1e-30, g2.dtype)))


# How the equation |grad phi| = 1 / v is turned into a residual (registered by name in pinnprov/pinn/plugins.py); all
# are zero for the exact solution. Each maps (|grad phi|^2, v) to the residual.


def hamiltonian_residual(g2: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    return g2 - 1.0 / tf.square(v)  # |grad phi|^2 - 1 / v^2


def slowness_residual(g2: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    return _norm(g2) - 1.0 / v  # |grad phi| - 1 / v


def velocity_residual(g2: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    return v * _norm(g2) - 1.0  # v |grad phi| - 1


def grad_phi_squared(tau: tf.Tensor, grad_tau: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """|grad_xr phi|^2 from tau (n,), grad_xr tau (n, 2) and xr - xs (n, 2)."""
    return (
        tf.square(tau)
        + 2.0 * tau * tf.reduce_sum(grad_tau * offset, axis=1)
        + tf.reduce_sum(tf.square(offset), axis=1) * tf.reduce_sum(tf.square(grad_tau), axis=1)
    )


def tau_and_gradient(tau_fn: TauFn, xs: tf.Tensor, xr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """tau(xs, xr) and its gradient with respect to the receiver position."""
    with tf.GradientTape() as tape:
        tape.watch(xr)
        tau = tau_fn(xs, xr)
    # Each tau_i depends on xr_i only, so the gradient of the sum is the per-point gradient.
    return tau, tape.gradient(tau, xr, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def residual(tau_fn: TauFn, v_fn: VelocityFn, xs: tf.Tensor, xr: tf.Tensor, form: str = "hamiltonian") -> tf.Tensor:
    """FEE residual at collocation pairs (xs, xr), shape (n,)."""
    tau, grad_tau = tau_and_gradient(tau_fn, xs, xr)
    return RESIDUAL_FORMS.get(form)(grad_phi_squared(tau, grad_tau, xr - xs), v_fn(xr))
