"""Forward mode: given a velocity model, solve the factored eikonal equation for tau with the PINN.

Only tau(xs, xr) trains; v is known (a numpy callable (x, z) -> m/s, or a grid via `GridVelocity`). The loss is
the FEE residual at collocation points plus tau(xs, xs) = 1 / v(xs) at the sources; there are no data.
Used to verify the residual and the factorisation against media with analytic traveltimes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pinnprov.pinn.dataset import Domain
from pinnprov.pinn.fee import grad_phi_squared, tau_and_gradient
from pinnprov.pinn.networks import TauNetwork
from pinnprov.pinn.plugins import OPTIMIZERS, RESIDUAL_FORMS
from pinnprov.pinn.sampling import CollocationSampler
from pinnprov.pinn.scaling import Scaling
from pinnprov.pinn.schedule import LearningRate

VelocityCallable = Callable[[np.ndarray, np.ndarray], np.ndarray]


class GridVelocity:
    """Bilinear interpolation of velocities given on the nodes of a regular grid spanning the domain.

    values[iz, ix] is the velocity at x = x_min + ix * width / (nx - 1), z = z_min + iz * depth / (nz - 1).
    """

    def __init__(self, values: np.ndarray, domain: Domain) -> None:
        self.values = np.asarray(values, np.float64)
        if self.values.ndim != 2 or min(self.values.shape) < 2:
            raise ValueError(f"velocity grid: expected a 2-D array of at least 2 x 2 nodes, got {self.values.shape}")
        if not np.all(np.isfinite(self.values)) or self.values.min() <= 0:
            raise ValueError("velocity grid: values must be finite and > 0")
        self.domain = domain

    def __call__(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        nz, nx = self.values.shape
        d = self.domain
        fx = np.clip((np.asarray(x) - d.x_min) / d.width * (nx - 1), 0, nx - 1)
        fz = np.clip((np.asarray(z) - d.z_min) / d.depth * (nz - 1), 0, nz - 1)
        ix, iz = np.minimum(fx.astype(int), nx - 2), np.minimum(fz.astype(int), nz - 2)
        ax, az = fx - ix, fz - iz
        v = self.values
        velocity: np.ndarray = ((1 - az) * ((1 - ax) * v[iz, ix] + ax * v[iz, ix + 1])
                                + az * ((1 - ax) * v[iz + 1, ix] + ax * v[iz + 1, ix + 1]))
        return velocity


@dataclass(frozen=True)
class ForwardConfig:
    layers: int = 4
    units: int = 32
    activation: str = "tanh"
    epochs: int = 3000
    lr_initial: float = 3e-3
    lr_decay_rate: float = 0.5
    lr_decay_steps: int = 1000
    collocation_count: int = 1000
    steps_per_call: int = 250
    seed: int = 0


@dataclass
class ForwardSolution:
    scaling: Scaling
    tau: TauNetwork
    epochs: int
    seconds: float
    losses: np.ndarray  # (epochs, 2): residual, boundary

    def traveltimes(self, sources: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        """phi(xs, xr) = tau * |xr - xs| in seconds for pairs (n, 2), (n, 2) in metres."""
        xs = tf.constant(self.scaling.points(sources))
        xr = tf.constant(self.scaling.points(receivers))
        tau_hat = self.tau(xs, xr).numpy().astype(np.float64)
        seconds: np.ndarray = tau_hat / self.scaling.velocity_m_s * np.linalg.norm(
            np.asarray(receivers) - np.asarray(sources), axis=1)
        return seconds


def solve_forward(velocity: VelocityCallable | GridVelocity, domain: Domain, sources: np.ndarray,
                  config: ForwardConfig | None = None) -> ForwardSolution:
    """Train tau for shots at `sources` (n, 2) in the medium `velocity` over `domain`."""
    config = config or ForwardConfig()
    started = time.time()
    sources = np.atleast_2d(np.asarray(sources, np.float64))
    probe_x, probe_z = np.meshgrid(np.linspace(domain.x_min, domain.x_max, 41),
                                   np.linspace(domain.z_min, domain.z_max, 41))
    probe = np.asarray(velocity(probe_x, probe_z), np.float64)
    scaling = Scaling.for_domain(domain, float(np.median(probe)))
    v0 = scaling.velocity_m_s
    # tau is an average slowness along the ray, so it lies within the medium's slowness range (with margin).
    tau = TauNetwork(config.layers, config.units, config.activation, config.seed,
                     0.8 * probe.min() / v0, 1.25 * probe.max() / v0)
    shots = scaling.points(sources)
    sampler = CollocationSampler(count=config.collocation_count, box=scaling.domain_box(domain), shot_points=shots,
                                 source_sampling="sources", boundary_points=0, seed=config.seed)
    v_col = tf.Variable(tf.zeros([config.collocation_count]), trainable=False)
    v_bc = tf.constant((velocity(sources[:, 0], sources[:, 1]) / v0).astype(np.float32)
                       * np.ones(len(sources), np.float32))
    x_bc = tf.constant(shots)

    def refresh() -> None:
        sampler.resample()
        xr = sampler.xr.numpy().astype(np.float64)
        x_m = xr[:, 0] * scaling.length_m + scaling.centre_x
        z_m = xr[:, 1] * scaling.length_m + scaling.centre_z
        v_col.assign((np.asarray(velocity(x_m, z_m), np.float64) / v0).astype(np.float32))

    variables = list(tau.trainable_variables)
    optimizer = OPTIMIZERS.get("adam")(variables)
    schedule = LearningRate("exponential_decay", config.lr_initial, config.lr_decay_rate, config.lr_decay_steps)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    residual_form = RESIDUAL_FORMS.get("hamiltonian")

    @tf.function(reduce_retracing=False)
    def run(k: int) -> tf.Tensor:
        records = tf.TensorArray(tf.float32, size=k, element_shape=[2])
        for i in tf.range(k):
            with tf.GradientTape() as tape:
                tau_r, grad_tau = tau_and_gradient(tau, sampler.xs, sampler.xr)
                # the residual is divided by |grad phi|^2's natural scale 1/v^2, so slow and fast regions weigh alike
                residual = residual_form(grad_phi_squared(tau_r, grad_tau, sampler.xr - sampler.xs), v_col)
                loss_residual = tf.reduce_mean(tf.square(residual * tf.square(v_col)))
                loss_bc = tf.reduce_mean(tf.square(tau(x_bc, x_bc) * v_bc - 1.0))
                loss = loss_residual + loss_bc
            optimizer.apply(tape.gradient(loss, variables), schedule(step))
            step.assign_add(1)
            records = records.write(i, tf.stack([loss_residual, loss_bc]))
        return records.stack()

    chunks = []
    done = 0
    while done < config.epochs:
        refresh()
        k = min(config.steps_per_call, config.epochs - done)
        chunks.append(run(k).numpy())
        done += k
    return ForwardSolution(scaling, tau, done, time.time() - started, np.concatenate(chunks))
