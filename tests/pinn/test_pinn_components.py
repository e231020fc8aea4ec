"""Building blocks: regularisers, collocation sampling, scaling, schedule, optimisers and networks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pinnprov.pinn.benchmark import DOMAIN, crosshole_benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.networks import TauNetwork, VelocityNetwork
from pinnprov.pinn.plugins import OPTIMIZERS, REGULARIZERS
from pinnprov.pinn.problem import Problem
from pinnprov.pinn.sampling import CollocationSampler
from pinnprov.pinn.scaling import Scaling, apparent_velocities, velocity_bounds
from pinnprov.pinn.schedule import LearningRate


def test_regularizers_on_known_fields() -> None:
    v = tf.constant([1.0, 1.0, 2.0, 1.5])
    grad = tf.constant([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    one = tf.constant(1.0)
    assert float(REGULARIZERS.get("none")(v, grad, 0.1, one)) == 0.0
    assert float(REGULARIZERS.get("smoothness")(v, grad, 0.1, one)) == pytest.approx(25.0 / 4)
    assert float(REGULARIZERS.get("tv")(v, grad, 1e-6, one)) == pytest.approx(5.0 / 4, rel=1e-5)
    # minimum support counts the points away from the background, almost regardless of how far
    support = float(REGULARIZERS.get("support")(v, grad, 0.01, one))
    assert support == pytest.approx(2 / 4, rel=1e-3)
    assert float(REGULARIZERS.get("support")(v, grad, 0.01, tf.constant(1.5))) == pytest.approx(3 / 4, rel=1e-3)
    assert float(REGULARIZERS.get("gradient_support")(v, grad, 0.01, one)) == pytest.approx(1 / 4, rel=1e-3)


def test_support_reference_trains_only_with_support() -> None:
    data = crosshole_benchmark()
    plain = Problem(TrainConfig(tau_layers=2, velocity_layers=2, regularizer="none"), data)
    assert all(v is not plain.loss.reference for v in plain.variables)
    support = Problem(TrainConfig(tau_layers=2, velocity_layers=2, regularizer="support", weight_regularizer=1e-3),
                      data)
    assert any(v is support.loss.reference for v in support.variables)


@pytest.mark.parametrize("mode", ["sources", "interpolated", "domain"])
def test_collocation_sampling(mode: str) -> None:
    shots = np.array([[-0.7, -0.8], [-0.7, 0.2], [-0.7, 0.9]], np.float32)
    box = (-0.7, 0.7, -1.0, 1.0)
    sampler = CollocationSampler(count=500, box=box, shot_points=shots, source_sampling=mode, boundary_points=20,
                                 seed=5)
    xs, xr = sampler.xs.numpy(), sampler.xr.numpy()
    assert xs.shape == xr.shape == (500, 2)
    assert np.all((xr[:, 0] >= -0.7) & (xr[:, 0] <= 0.7) & (xr[:, 1] >= -1) & (xr[:, 1] <= 1))
    if mode == "sources":
        assert {tuple(p) for p in xs} <= {tuple(p) for p in shots}
        assert sampler.x_bc.shape[0] == 3
    elif mode == "interpolated":
        assert np.allclose(xs[:, 0], -0.7) and xs[:, 1].min() >= -0.8 and xs[:, 1].max() <= 0.9
        assert len(np.unique(xs[:, 1])) > 100 and sampler.x_bc.shape[0] == 23
    else:
        assert xs[:, 0].std() > 0.3
    before = xr.copy()
    sampler.resample()
    assert not np.allclose(before, sampler.xr.numpy())
    again = CollocationSampler(count=500, box=box, shot_points=shots, source_sampling=mode, boundary_points=20, seed=5)
    np.testing.assert_array_equal(again.xr.numpy(), before)  # seeded: reproducible


def test_ray_sampling_concentrates_between_pairs() -> None:
    pair_s = np.array([[-1.0, 0.0]], np.float32)
    pair_r = np.array([[1.0, 0.0]], np.float32)
    sampler = CollocationSampler(count=1000, box=(-1, 1, -1, 1), shot_points=pair_s, source_sampling="sources",
                                 boundary_points=0, seed=1, ray_fraction=0.5, ray_width=0.01,
                                 pair_sources=pair_s, pair_receivers=pair_r)
    near = sampler.xr.numpy()[500:]
    assert np.abs(near[:, 1]).max() < 0.06 and near[:, 0].std() > 0.4


def test_reciprocity_doubles_the_picks() -> None:
    data = crosshole_benchmark()
    problem = Problem(TrainConfig(tau_layers=2, velocity_layers=2, reciprocity=True), data)
    assert problem.loss.sources.shape[0] == 200 and problem.sampler.shots.shape[0] == 20
    np.testing.assert_array_equal(problem.loss.sources.numpy()[100:], problem.loss.receivers.numpy()[:100])


def test_scaling_and_bounds() -> None:
    data = crosshole_benchmark()
    scaling = Scaling.for_data(data)
    assert scaling.length_m == 14.0 and scaling.time_s == pytest.approx(14.0 / scaling.velocity_m_s)
    assert scaling.domain_box(DOMAIN) == pytest.approx((-10 / 14, 10 / 14, -1.0, 1.0))
    assert np.allclose(scaling.points(np.array([[10.0, 14.0]])), 0.0)
    low, high = velocity_bounds(data)
    apparent = apparent_velocities(data)
    assert low < apparent.min() and high > 4000 > apparent.max()
    assert velocity_bounds(data, 1000.0, 5000.0) == (1000.0, 5000.0)


def test_networks_start_homogeneous_and_stay_in_bounds() -> None:
    v = VelocityNetwork(3, 16, "tanh", 0, 0.5, 2.0, fourier_features=8, fourier_scale=2.0)
    tau = TauNetwork(3, 16, "tanh", 0, 0.5, 2.0)
    points = tf.random.uniform([200, 2], -1, 1, seed=1)
    # the output bias centres both on the homogeneous value; the last layer's random weights add a spread
    assert abs(float(tf.reduce_mean(v(points))) - 1.0) < 0.15
    assert abs(float(tf.reduce_mean(tau(points, points[::-1]))) - 1.0) < 0.15
    far = tf.constant([[1e4, -1e4]])
    assert 0.5 <= float(v(far)[0]) <= 2.0


def test_learning_rate_schedule_set_and_scale() -> None:
    lr = LearningRate("exponential_decay", 1e-3, 0.5, 100)
    assert lr.value(0) == 0.001 and lr.value(100) == 0.0005 and lr.value(50) == pytest.approx(0.000707107, rel=1e-5)
    lr.set(100, 0.01)
    assert lr.value(100) == pytest.approx(0.01) and lr.value(200) == pytest.approx(0.005)
    lr.scale(0.1)
    assert lr.value(100) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        lr.set(0, -1.0)
    staircase = LearningRate("exponential_decay", 1e-3, 0.5, 100, staircase=True)
    assert staircase.value(99) == 0.001 and staircase.value(100) == 0.0005


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizers_match_keras(name: str) -> None:
    """Our update rules equal tf.keras's on the same quadratic, step for step."""
    import keras

    target = np.array([1.0, -2.0, 3.0], np.float32)
    ours = tf.Variable(np.zeros(3, np.float32))
    theirs = tf.Variable(np.zeros(3, np.float32))
    optimizer = OPTIMIZERS.get(name)([ours])
    reference = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[name](learning_rate=0.01)
    for _ in range(20):
        for variable, apply in ((ours, lambda g: optimizer.apply([g], tf.constant(0.01))),
                                (theirs, lambda g: reference.apply_gradients([(g, theirs)]))):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(variable - target) * tf.constant([1.0, 10.0, 0.1]))
            apply(tape.gradient(loss, variable))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)
