"""The model suite (pinn/model_suite.py): cases, split, data generation and scoring against their exact models."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.pinn import benchmark, model_suite
from pinnprov.pinn.metrics import r2
from pinnprov.pinn.scoring import grid_for, true_model


def test_split_is_fixed_disjoint_and_covers_the_kinds_the_issue_names() -> None:
    tuning, test = model_suite.cases("tuning"), model_suite.cases("test")
    assert len(tuning) + len(test) == len(model_suite.CASES) >= 8
    assert not {c.name for c in tuning} & {c.name for c in test}
    assert {c.sensors_per_borehole for c in tuning} == {c.sensors_per_borehole for c in test} == {10, 20}
    assert len({c.noise_seed for c in model_suite.CASES}) == len(model_suite.CASES)
    with pytest.raises(ValueError, match="unknown split"):
        model_suite.cases("holdout")
    with pytest.raises(ValueError, match="unknown suite case"):
        model_suite.case("no-such-model")


@pytest.mark.parametrize("name", [c.name for c in model_suite.CASES])
def test_each_case_is_crosshole_data_with_the_stated_noise_model(name: str) -> None:
    case = model_suite.case(name)
    data = case.data()
    n = case.sensors_per_borehole
    assert data.picks == n * n
    assert np.all(data.sources[:, 0] == 0.0) and np.all(data.receivers[:, 0] == 20.0)
    assert data.domain == benchmark.DOMAIN
    # the expected sigma of 0.1 % + 10 µs at 8-17 ms traveltimes is 13-20 µs
    assert data.noise_rms_s is not None and 1.3e-5 < data.noise_rms_s < 2.0e-5
    # first arrivals are bounded by the slowest and fastest straight paths
    distance = np.hypot(*(data.receivers - data.sources).T)
    grid_x, grid_z = grid_for(data)
    velocity = case.true_velocity(grid_x, grid_z)
    assert np.all(data.traveltimes <= distance / velocity.min() * 1.01)
    assert np.all(data.traveltimes >= distance / velocity.max() * 0.99)
    assert velocity.std() > 0  # R^2 is defined


def test_data_are_deterministic_per_case() -> None:
    case = model_suite.case("layered")
    first = model_suite._case_data.__wrapped__(case.name)
    second = model_suite._case_data.__wrapped__(case.name)
    np.testing.assert_array_equal(first.traveltimes, second.traveltimes)
    assert first.sha256() == second.sha256()
    assert model_suite.case("fast-small").data().sha256() != first.sha256()


def test_scoring_knows_the_exact_model_of_suite_data_only() -> None:
    data = model_suite.case("fast-small").data()
    exact = true_model(data)
    assert exact is not None
    grid_x, grid_z = grid_for(data)
    assert grid_x.shape == (benchmark.SCORE_CELLS_Z, benchmark.SCORE_CELLS_X)
    truth = exact(grid_x, grid_z)
    assert r2(truth, truth) == 1.0
    assert r2(np.full_like(truth, truth.mean()), truth) == pytest.approx(0.0)
    assert true_model(benchmark.crosshole_benchmark()) is benchmark.true_velocity
    user = model_suite.case("fast-small").data()
    anonymous = type(user)(name="picks", domain=user.domain, sources=user.sources, receivers=user.receivers,
                           traveltimes=user.traveltimes, origin="picks.csv")
    assert true_model(anonymous) is None


def test_discrepancy_target_is_the_noise_models_sigma_not_the_realised_noise() -> None:
    data = benchmark.crosshole_benchmark()
    clean = benchmark.clean_traveltimes()
    realised = float(np.sqrt(np.mean((data.traveltimes - clean) ** 2)))
    expected = float(np.sqrt(np.mean(benchmark.noise_sigma(data.traveltimes) ** 2)))
    assert data.noise_rms_s == pytest.approx(expected)
    assert data.noise_rms_s != pytest.approx(realised, rel=1e-6)  # the generator's draw is not what a user knows
