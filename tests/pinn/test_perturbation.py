"""An RML member's draws (pinn/perturbation.py): picks noise, the prior's random background field, its weight factor.

Statistical tolerances are derived from the sampling error of each estimate, at about 5 standard errors, so a
correct implementation does not fail by chance while a wrong scale (a missing sqrt(2), a length in the wrong units,
a variance where a std belongs) is far outside them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from pinnprov.pinn import model_suite
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.perturbation import FEATURES, Perturbation
from pinnprov.pinn.problem import Problem
from pinnprov.pinn.trainer import configure_threads

configure_threads(1)

TINY = TrainConfig(tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, collocation_count=16,
                   boundary_points=4, threads=1, jit_compile=False, seed=3)


def points(count: int, half_width: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-half_width, half_width, size=(count, 2))


# --- inactive draws ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("perturbation", [
    Perturbation(0, picks_s=1e-4, prior=0.2, prior_weight=0.5),  # seed 0: an ordinary run, whatever the sizes
    Perturbation(7),  # a seed but nothing to draw
])
def test_an_inactive_perturbation_changes_nothing(perturbation: Perturbation) -> None:
    times = np.linspace(0.008, 0.017, 50)
    assert not perturbation.active
    np.testing.assert_array_equal(perturbation.perturbed_times(times), times)
    assert perturbation.weight_factor() == 1.0
    assert perturbation.field_features() is None
    np.testing.assert_array_equal(perturbation.field(points(10, 1.0, 0)), np.zeros(10))


def test_each_draw_is_off_when_its_size_is_zero() -> None:
    only_picks = Perturbation(5, picks_s=1e-4)
    assert only_picks.active and only_picks.weight_factor() == 1.0 and only_picks.field_features() is None
    only_field = Perturbation(5, prior=0.1)
    times = np.linspace(0.01, 0.02, 7)
    np.testing.assert_array_equal(only_field.perturbed_times(times), times)
    assert only_field.weight_factor() == 1.0
    assert Perturbation(5, prior_weight=0.3).field_features() is None


# --- picks ---------------------------------------------------------------------------------------------------
def test_picks_noise_has_the_stated_std_and_zero_mean() -> None:
    sigma, n = 2.5e-5, 40000
    times = np.full(n, 0.012)
    noise = Perturbation(11, picks_s=sigma).perturbed_times(times) - times
    # standard errors: mean sigma / sqrt(n) = 0.005 sigma, std about sigma / sqrt(2 n) = 0.0035 sigma
    assert abs(noise.mean()) < 0.025 * sigma
    assert noise.std() == pytest.approx(sigma, rel=0.02)
    # Gaussian: about 68.3 % within one sigma (standard error 0.0023)
    assert np.mean(np.abs(noise) < sigma) == pytest.approx(0.6827, abs=0.012)


def test_picks_noise_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    times = np.linspace(0.008, 0.017, 200)
    first = Perturbation(3, picks_s=1e-5).perturbed_times(times)
    np.testing.assert_array_equal(first, Perturbation(3, picks_s=1e-5).perturbed_times(times))
    other = Perturbation(4, picks_s=1e-5).perturbed_times(times)
    assert not np.allclose(first, other)
    # independent draws: the two noise vectors are uncorrelated (standard error 1 / sqrt(200) = 0.07)
    assert abs(np.corrcoef(first - times, other - times)[0, 1]) < 0.3
    # independent streams within a member: its first pick draw is not its weight draw (log factor / s)
    assert not np.isclose((first - times)[0] / 1e-5, math.log(Perturbation(3, prior_weight=1.0).weight_factor()))


# --- the random field ----------------------------------------------------------------------------------------
def test_field_has_mean_zero_and_the_stated_std_over_a_large_domain() -> None:
    prior, length = 0.1, 0.3
    samples = points(6000, 15.0, 1)  # 100 correlation lengths across: spatial averages stand for ensemble ones
    for seed in (1, 2, 3):
        values = Perturbation(seed, prior=prior, prior_length=length).field(samples)
        assert values.shape == (6000,)
        assert abs(values.mean()) < 0.05 * prior
        assert values.std() == pytest.approx(prior, rel=0.1)


def test_field_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    samples = points(500, 1.0, 2)
    first = Perturbation(8, prior=0.1).field(samples)
    np.testing.assert_array_equal(first, Perturbation(8, prior=0.1).field(samples))
    assert abs(np.corrcoef(first, Perturbation(9, prior=0.1).field(samples))[0, 1]) < 0.5
    # the size scales the field, the seed alone decides its shape
    np.testing.assert_allclose(Perturbation(8, prior=0.3).field(samples), 3 * first, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("length", "lag_in_lengths"), [(0.3, 1.0), (0.3, 2.0), (0.15, 1.0)])
def test_field_correlation_is_squared_exponential_in_the_stated_length(length: float, lag_in_lengths: float) -> None:
    """corr(delta(X), delta(X + d)) = exp(-d^2 / (2 l^2)): exp(-1/2) = 0.607 at d = l, exp(-2) = 0.135 at d = 2 l.

    With F features one realisation's correlation is (1/F) sum_j cos(w_j . d), whose std is about
    sqrt(Var cos(w . d) / F) <= 0.45 / 16 = 0.028; averaged over 8 seeds 0.01, so 0.05 is 5 standard errors.
    A length in other units (L instead of its share, 2 l, l / sqrt(2)) would move the correlation at d = l
    to 0.88, 0.14 or 0.37.
    """
    assert FEATURES >= 256
    lag = np.array([lag_in_lengths * length, 0.0])
    base = points(6000, 12.0, 5)  # 40 to 80 correlation lengths across
    correlations = []
    for seed in range(1, 9):
        perturbation = Perturbation(seed, prior=0.2, prior_length=length)
        correlations.append(np.corrcoef(perturbation.field(base), perturbation.field(base + lag))[0, 1])
    assert np.mean(correlations) == pytest.approx(math.exp(-(lag_in_lengths**2) / 2), abs=0.05)


def test_field_is_isotropic() -> None:
    length = 0.3
    base = points(6000, 12.0, 6)
    along_x, along_z = [], []
    for seed in range(1, 9):
        perturbation = Perturbation(seed, prior=0.2, prior_length=length)
        values = perturbation.field(base)
        along_x.append(np.corrcoef(values, perturbation.field(base + [length, 0.0]))[0, 1])
        along_z.append(np.corrcoef(values, perturbation.field(base + [0.0, length]))[0, 1])
    assert np.mean(along_z) == pytest.approx(math.exp(-0.5), abs=0.05)
    assert np.mean(along_x) == pytest.approx(np.mean(along_z), abs=0.06)


# --- the weight factor ---------------------------------------------------------------------------------------
def test_weight_factor_is_log_normal_with_the_stated_log_std() -> None:
    s = 0.5
    logs = np.log([Perturbation(seed, prior_weight=s).weight_factor() for seed in range(1, 2001)])
    # log factor ~ N(0, s^2): standard errors 0.022 s on the mean, 0.016 s on the std
    assert abs(logs.mean()) < 0.11 * s
    assert logs.std() == pytest.approx(s, rel=0.08)
    assert Perturbation(17, prior_weight=s).weight_factor() == Perturbation(17, prior_weight=s).weight_factor()
    # same seed, twice the log-std: the same standard normal draw, so the log doubles
    assert math.log(Perturbation(17, prior_weight=2 * s).weight_factor()) == pytest.approx(2 * logs[16], rel=1e-12)


# --- inside the Problem and the loss -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> TraveltimeData:
    return model_suite.case("narrow-deep-layers").data()


def test_tf_background_is_the_reference_plus_the_numpy_field(data: TraveltimeData) -> None:
    config = TINY.replace(perturb_seed=21, perturb_prior=0.1, perturb_prior_length=0.3)
    problem = Problem(config, data)
    grid = problem.scaling.points(np.column_stack([
        np.random.default_rng(0).uniform(data.domain.x_min, data.domain.x_max, 300),
        np.random.default_rng(1).uniform(data.domain.z_min, data.domain.z_max, 300)]))
    problem.loss.reference.assign(1.07)
    background = problem.loss.background(tf.constant(grid, tf.float32)).numpy()
    expected = 1.07 + config.perturbation.field(grid)
    assert background.shape == (300,)
    np.testing.assert_allclose(background, expected, atol=2e-5)
    assert np.std(expected - 1.07) > 0.03  # the field is really there (std about 0.1 over the domain)


def test_unperturbed_background_is_the_trained_scalar(data: TraveltimeData) -> None:
    problem = Problem(TINY, data)
    grid = tf.constant(points(20, 1.0, 3), tf.float32)
    background = problem.loss.background(grid)
    assert float(tf.reduce_max(tf.abs(background - problem.loss.reference))) == 0.0


def test_problem_trains_on_the_perturbed_picks_with_the_factored_weight(data: TraveltimeData) -> None:
    config = TINY.replace(weight_regularizer=4e-4, perturb_seed=13, perturb_picks_s=2e-5,
                         perturb_prior_weight=0.7)
    perturbation = config.perturbation
    problem = Problem(config, data)
    factor = perturbation.weight_factor()
    assert factor != 1.0 and problem.prior_weight_factor == factor
    assert float(problem.weights.regularizer.numpy()) == pytest.approx(4e-4 * factor, rel=1e-6)
    trained = problem.loss.times.numpy().astype(np.float64) * problem.scaling.time_s
    np.testing.assert_allclose(trained, perturbation.perturbed_times(data.traveltimes)[problem.split.train],
                               rtol=1e-6)
    assert np.std(trained - data.traveltimes[problem.split.train]) == pytest.approx(2e-5, rel=0.3)

    plain = Problem(config.replace(perturb_seed=0), data)
    assert plain.prior_weight_factor == 1.0
    assert float(plain.weights.regularizer.numpy()) == pytest.approx(4e-4, rel=1e-6)
    np.testing.assert_allclose(plain.loss.times.numpy() * plain.scaling.time_s, data.traveltimes, rtol=1e-6)
