"""The factored eikonal residual vanishes for analytic traveltimes; scaling and metrics are consistent."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pinnprov.pinn.analytic import ConstantGradient
from pinnprov.pinn.fee import grad_phi_squared, residual, tau_and_gradient
from pinnprov.pinn.metrics import r2, rmse
from pinnprov.pinn.plugins import RESIDUAL_FORMS


def _tau_fn(medium: ConstantGradient):
    """Analytic tau(xs, xr) in TensorFlow (float64), physical units (s/m)."""

    def velocity(points: tf.Tensor) -> tf.Tensor:
        return medium.v0 + medium.gradient * (points[:, 1] - medium.z0)

    def tau(xs: tf.Tensor, xr: tf.Tensor) -> tf.Tensor:
        r = tf.norm(xr - xs, axis=1)
        if medium.gradient == 0:
            return tf.ones_like(r) / medium.v0
        g = abs(medium.gradient)
        t = tf.math.acosh(1.0 + g**2 * r**2 / (2.0 * velocity(xs) * velocity(xr))) / g
        return t / r

    return tau, velocity


def _pairs(n: int, seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    xs = np.column_stack([np.zeros(n), rng.uniform(1, 27, n)])
    xr = np.column_stack([rng.uniform(0.5, 20, n), rng.uniform(0, 28, n)])
    return tf.constant(xs, tf.float64), tf.constant(xr, tf.float64)


@pytest.mark.parametrize("medium", [ConstantGradient(2000.0), ConstantGradient(2000.0, 50.0),
                                    ConstantGradient(3000.0, -40.0)], ids=["homogeneous", "gradient", "negative"])
@pytest.mark.parametrize("form", RESIDUAL_FORMS.names())
def test_residual_vanishes_for_analytic_tau(medium: ConstantGradient, form: str) -> None:
    tau, velocity = _tau_fn(medium)
    xs, xr = _pairs(500, 1)
    values = residual(tau, velocity, xs, xr, form).numpy()
    # the residual is relative to 1/v^2 (hamiltonian) or 1/v (slowness): compare at each form's own scale
    scale = {"hamiltonian": 1 / medium.v0**2, "slowness": 1 / medium.v0, "velocity": 1.0}[form]
    assert np.max(np.abs(values)) / scale < 1e-9


def test_residual_detects_wrong_velocity() -> None:
    tau, _ = _tau_fn(ConstantGradient(2000.0, 50.0))
    xs, xr = _pairs(200, 2)
    values = residual(tau, lambda p: 1.1 * (2000.0 + 50.0 * p[:, 1]), xs, xr, "velocity").numpy()
    assert np.allclose(values, 0.1, atol=1e-6)  # v |grad phi| - 1 = 1.1 - 1


def test_expanded_gradient_matches_autodiff_of_phi() -> None:
    """|grad phi|^2 from the factored expansion equals autodiff of phi = tau |xr - xs| directly."""
    tau, _ = _tau_fn(ConstantGradient(2000.0, 50.0))
    xs, xr = _pairs(100, 3)
    tau_values, grad_tau = tau_and_gradient(tau, xs, xr)
    with tf.GradientTape() as tape:
        tape.watch(xr)
        phi = tau(xs, xr) * tf.norm(xr - xs, axis=1)
    direct = tf.reduce_sum(tf.square(tape.gradient(phi, xr)), axis=1)
    np.testing.assert_allclose(grad_phi_squared(tau_values, grad_tau, xr - xs).numpy(), direct.numpy(), rtol=1e-10)


def test_expansion_is_finite_at_the_source() -> None:
    """The singularity sits in xi = |xr - xs|: at xr = xs the expansion reduces to tau^2 = 1 / v^2."""
    xs = tf.constant([[0.0, 10.0]], tf.float64)
    g2 = grad_phi_squared(tf.constant([1 / 2000.0], tf.float64), tf.constant([[1e-5, 2e-5]], tf.float64),
                          xs - xs).numpy()
    assert np.isfinite(g2).all() and g2[0] == pytest.approx(1 / 2000.0**2)


def test_metrics() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2(truth, truth) == 1.0
    assert r2(np.full(4, truth.mean()), truth) == 0.0
    assert rmse(truth + 2.0, truth) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shapes differ"):
        r2(truth[:3], truth)
    with pytest.raises(ValueError, match="constant"):
        r2(truth, np.ones(4))


def test_analytic_gradient_traveltime_against_fast_marching() -> None:
    """The closed form agrees with eikonalfm's factored fast marching (independent check of the formula)."""
    from pinnprov.pinn.benchmark import DOMAIN, solve_traveltimes

    medium = ConstantGradient(2000.0, 50.0)
    h = 0.25
    gx, gz = np.meshgrid(np.arange(0, 20 + h / 2, h), np.arange(0, 28 + h / 2, h), indexing="ij")
    sources = np.array([[0.0, 5.0], [0.0, 20.0]])
    receivers = np.array([[20.0, 25.0], [20.0, 2.5]])
    fmm = solve_traveltimes(medium.velocity(gx, gz), h, sources, receivers, DOMAIN)
    np.testing.assert_allclose(fmm, medium.traveltime(sources, receivers), rtol=2e-3)
