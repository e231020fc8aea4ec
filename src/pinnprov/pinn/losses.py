"""The loss L = w_R L_R + w_BC L_BC + w_D L_D of the paper's Eq. (8), each component kept separately.

The optimiser minimises L plus an optional regulariser of v (pinn.regularizers), reported as an extra term,
never folded into the three components. Weights are tf.Variables so steering can change
them between compiled calls without retracing.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pinnprov.pinn.fee import grad_phi_squared
from pinnprov.pinn.networks import TauNetwork, VelocityNetwork
from pinnprov.pinn.plugins import REGULARIZERS, RESIDUAL_FORMS, USES_REFERENCE

# Order of the per-step record the compiled loop returns; the trainer turns it into EpochEnded events.
RECORD_FIELDS = ("loss", "loss_bc", "loss_residual", "loss_data", "learning_rate", "data_rms_s",
                 "regularizer", "objective")
LOSS, LEARNING_RATE, DATA_RMS = (RECORD_FIELDS.index(name) for name in ("loss", "learning_rate", "data_rms_s"))


class LossWeights(tf.Module):
    def __init__(self, residual: float, boundary: float, data: float, regularizer: float = 0.0, *,
                 regularized: bool = False) -> None:
        super().__init__(name="loss_weights")
        self.residual = tf.Variable(residual, dtype=tf.float32, trainable=False, name="w_residual")
        self.boundary = tf.Variable(boundary, dtype=tf.float32, trainable=False, name="w_boundary")
        self.data = tf.Variable(data, dtype=tf.float32, trainable=False, name="w_data")
        self.regularizer = tf.Variable(regularizer, dtype=tf.float32, trainable=False, name="w_regularizer")
        self.regularised = regularized

    def by_name(self, name: str) -> tf.Variable:
        """The weight a steering `set_weight` names: residual, boundary, data or regularizer."""
        if name not in ("residual", "boundary", "data", "regularizer"):
            raise ValueError(f"unknown loss weight {name!r} (choose from: boundary, data, regularizer, residual)")
        return getattr(self, name)


class PinnLoss(tf.Module):
    """Evaluates every loss term for the current collocation points and the (training) picks."""

    def __init__(self, tau: TauNetwork, velocity: VelocityNetwork, weights: LossWeights, *, residual_form: str,
                 data_loss: str, sources: np.ndarray, receivers: np.ndarray, times_hat: np.ndarray,
                 time_scale_s: float, regularizer: str = "none", regularizer_beta: float = 0.1,
                 prior_field: tuple[np.ndarray, np.ndarray, float] | None = None) -> None:
        super().__init__(name="pinn_loss")
        self.tau, self.velocity, self.weights = tau, velocity, weights
        self._form = RESIDUAL_FORMS.get(residual_form)
        self._relative = data_loss == "relative"
        self._regularizer = REGULARIZERS.get(regularizer)
        self._beta = float(regularizer_beta)
        # background velocity of the support regulariser (nondimensional); trains only when it is used
        self.reference = tf.Variable(1.0, dtype=tf.float32, trainable=regularizer in USES_REFERENCE,
                                     name="v_reference")
        # an RML member's draw of the background (pinnprov/pinn/perturbation.py): r + delta(x) instead of r
        self._field = None if prior_field is None else (
            tf.constant(prior_field[0], tf.float32), tf.constant(prior_field[1], tf.float32), float(prior_field[2]))
        self.sources = tf.constant(sources, tf.float32)
        self.receivers = tf.constant(receivers, tf.float32)
        self.distances = tf.norm(self.receivers - self.sources, axis=1)
        self.times = tf.constant(times_hat, tf.float32)
        self.time_scale_s = float(time_scale_s)

    def predict_times(self, sources: tf.Tensor, receivers: tf.Tensor) -> tf.Tensor:
        """Nondimensional traveltimes phi = tau * |xr - xs|."""
        return self.tau(sources, receivers) * tf.norm(receivers - sources, axis=1)

    def __call__(self, xs: tf.Tensor, xr: tf.Tensor, x_bc: tf.Tensor) -> dict[str, tf.Tensor]:
        # One network call per network over collocation, boundary and data points together: small networks
        # are bound by per-op overhead, not arithmetic, so fewer, larger ops make the step faster.
        n, nb = xr.shape[0], x_bc.shape[0]
        xs_all = tf.concat([xs, x_bc, self.sources], axis=0)
        xr_all = tf.concat([xr, x_bc, self.receivers], axis=0)
        with tf.GradientTape(persistent=self.weights.regularised) as tape:
            tape.watch(xr_all)
            tau_all = self.tau(xs_all, xr_all)
            velocity_all = self.velocity(xr_all[: n + nb])
        grad_tau = tape.gradient(tau_all, xr_all)[:n]
        tau, tau_bc, tau_data = tau_all[:n], tau_all[n : n + nb], tau_all[n + nb :]
        velocity, velocity_bc = velocity_all[:n], velocity_all[n:]
        residual = self._form(grad_phi_squared(tau, grad_tau, xr - xs), velocity)
        loss_residual = tf.reduce_mean(tf.square(residual))

        # tau(x, x) = 1 / v(x), written as tau v - 1 so both networks see an O(1) misfit.
        loss_bc = tf.reduce_mean(tf.square(tau_bc * velocity_bc - 1.0))

        misfit = tau_data * self.distances - self.times
        scaled = misfit / self.times if self._relative else misfit
        loss_data = tf.reduce_mean(tf.square(scaled))
        data_rms_s = tf.sqrt(tf.reduce_mean(tf.square(misfit))) * self.time_scale_s

        regularizer = tf.zeros([], tf.float32)
        if self.weights.regularised:
            grad_v = tape.gradient(velocity_all, xr_all)[:n]
            regularizer = self._regularizer(velocity, grad_v, self._beta, self.background(xr))
            del tape

        w = self.weights
        loss = w.residual * loss_residual + w.boundary * loss_bc + w.data * loss_data
        objective = loss + w.regularizer * regularizer
        return {
            "loss": loss, "loss_bc": loss_bc, "loss_residual": loss_residual, "loss_data": loss_data,
            "data_rms_s": data_rms_s, "regularizer": regularizer,
            "objective": objective,
        }

    def background(self, points: tf.Tensor) -> tf.Tensor:
        """The prior's background at `points`: the trained scalar r, plus this member's random field if it has one."""
        if self._field is None:
            return self.reference
        frequencies, phases, amplitude = self._field
        return self.reference + amplitude * tf.reduce_sum(tf.cos(tf.matmul(points, frequencies) + phases), axis=1)

    def data_rms_s(self, sources: tf.Tensor, receivers: tf.Tensor, times_hat: tf.Tensor) -> float:
        """RMS traveltime misfit in seconds on any picks (e.g. held-out ones)."""
        misfit = self.predict_times(sources, receivers) - times_hat
        return float(tf.sqrt(tf.reduce_mean(tf.square(misfit)))) * self.time_scale_s
