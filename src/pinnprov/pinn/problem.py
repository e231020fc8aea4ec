"""Assembles one inverse problem from a config and a data set: scaling, networks, loss, sampler, optimiser.

Kept apart from the training loop so the forward solver, the throughput benchmark and tests can build the
same pieces without observers or steering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.losses import LossWeights, PinnLoss
from pinnprov.pinn.networks import TauNetwork, VelocityNetwork
from pinnprov.pinn.plugins import OPTIMIZERS
from pinnprov.pinn.sampling import CollocationSampler
from pinnprov.pinn.scaling import Scaling, velocity_bounds
from pinnprov.pinn.schedule import LearningRate


@dataclass
class Split:
    """Which picks train the networks and which (if any) are held out for data-only model selection."""

    train: np.ndarray  # indices
    holdout: np.ndarray

    @classmethod
    def make(cls, picks: int, fraction: float, seed: int) -> Split:
        order = np.random.default_rng(seed + 104729).permutation(picks)
        held = int(round(fraction * picks))
        if fraction > 0 and not 1 <= held < picks:
            raise ValueError(f"holdout_fraction: {fraction} of {picks} picks leaves no training or held-out pick")
        return cls(train=np.sort(order[held:]), holdout=np.sort(order[:held]))


class Problem:
    """Everything the compiled step touches, built once per run."""

    def __init__(self, config: TrainConfig, data: TraveltimeData) -> None:
        self.config, self.data = config, data
        self.scaling = Scaling.for_data(data)
        v0 = self.scaling.velocity_m_s
        self.v_min_m_s, self.v_max_m_s = velocity_bounds(data, config.velocity_min_m_s, config.velocity_max_m_s)
        v_lo, v_hi = self.v_min_m_s / v0, self.v_max_m_s / v0
        self.velocity = VelocityNetwork(
            config.velocity_layers, config.velocity_units, config.velocity_activation_name, config.seed, v_lo, v_hi,
            config.velocity_fourier_features, config.velocity_fourier_scale,
        )
        self.tau = TauNetwork(config.tau_layers, config.tau_units, config.activation, config.seed, v_lo, v_hi)
        self.split = Split.make(data.picks, config.held_out_fraction, config.seed)
        sources = self.scaling.points(data.sources)
        receivers = self.scaling.points(data.receivers)
        perturbation = config.perturbation
        self.prior_weight_factor = perturbation.weight_factor()
        times_hat = (perturbation.perturbed_times(data.traveltimes) / self.scaling.time_s).astype(np.float32)
        train = self.split.train
        pair_sources, pair_receivers, pair_times = sources[train], receivers[train], times_hat[train]
        shots = sources
        if config.reciprocity:
            # phi(a, b) = phi(b, a): each pick is also a shot from its receiver, so tau learns both directions
            pair_sources, pair_receivers = (np.concatenate([pair_sources, pair_receivers]),
                                            np.concatenate([pair_receivers, pair_sources]))
            pair_times = np.concatenate([pair_times, pair_times])
            shots = np.concatenate([sources, receivers])
        self.weights = LossWeights(config.weight_residual, config.weight_boundary, config.weight_data,
                                   config.weight_regularizer * self.prior_weight_factor,
                                   regularized=config.regularizer != "none")
        self.loss = PinnLoss(
            self.tau, self.velocity, self.weights, residual_form=config.residual_form, data_loss=config.data_loss,
            regularizer=config.regularizer, regularizer_beta=config.regularizer_beta,
            sources=pair_sources, receivers=pair_receivers, times_hat=pair_times,
            time_scale_s=self.scaling.time_s, prior_field=perturbation.field_features(),
        )
        held = self.split.holdout
        self.holdout = (tf.constant(sources[held]), tf.constant(receivers[held]), tf.constant(times_hat[held]))
        self.sampler = CollocationSampler(
            count=config.collocation_count, box=self.scaling.domain_box(data.domain), shot_points=shots,
            source_sampling=config.source_sampling, boundary_points=config.boundary_points, seed=config.seed,
            ray_fraction=config.ray_fraction, ray_width=config.ray_width,
            pair_sources=pair_sources, pair_receivers=pair_receivers,
        )
        self.variables: list[tf.Variable] = list(self.tau.trainable_variables) + list(
            self.velocity.trainable_variables
        )
        if self.loss.reference.trainable:
            self.variables.append(self.loss.reference)
        self.learning_rate = LearningRate(config.lr_schedule, config.lr_initial, config.lr_decay_rate,
                                          config.lr_decay_steps, config.lr_staircase)
        self.optimizer = OPTIMIZERS.get(config.optimizer)(self.variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def holdout_rms_s(self) -> float | None:
        if not len(self.split.holdout):
            return None
        return self.loss.data_rms_s(*self.holdout)

    def velocity_m_s(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The current velocity model at points (any shape), m/s."""
        x, z = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(z, np.float64))
        points = self.scaling.points(np.column_stack([x.ravel(), z.ravel()]))
        values: np.ndarray = self.velocity(tf.constant(points)).numpy().astype(np.float64) * self.scaling.velocity_m_s
        return values.reshape(x.shape)

    def snapshot(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.variables]

    def restore(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.variables, values, strict=True):
            variable.assign(value)
