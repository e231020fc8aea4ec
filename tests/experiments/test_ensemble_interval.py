"""Student's t quantiles, the ensemble's prediction interval and its coverage (experiments/ensemble.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pinnprov.experiments.ensemble import (
    INTERVAL_LEVEL,
    coverage,
    ensemble_stats,
    interval,
    student_t_quantile,
)

# One-sided upper critical values t_{p, dof}, from the NIST/SEMATECH e-Handbook of Statistical Methods,
# section 1.3.6.7.2 "Critical Values of the Student's t Distribution" (3 decimals, so +- 0.0005 of rounding).
T_TABLE = {
    # dof: (p = 0.95, p = 0.975, p = 0.995)
    1: (6.314, 12.706, 63.657),
    2: (2.920, 4.303, 9.925),
    3: (2.353, 3.182, 5.841),
    4: (2.132, 2.776, 4.604),
    5: (2.015, 2.571, 4.032),
    7: (1.895, 2.365, 3.499),
    10: (1.812, 2.228, 3.169),
    30: (1.697, 2.042, 2.750),
}
ROUNDING = 0.0005


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 7, 10, 30])
@pytest.mark.parametrize(("column", "probability"), [(0, 0.95), (1, 0.975)])
def test_t_quantile_matches_the_table_within_the_documented_accuracy(dof: int, column: int,
                                                                     probability: float) -> None:
    # documented: dof 1 and 2 exact (closed forms), dof >= 3 within 0.004 up to p = 0.975
    accuracy = 1e-9 if dof <= 2 else 0.004
    assert student_t_quantile(probability, dof) == pytest.approx(T_TABLE[dof][column], abs=accuracy + ROUNDING)


@pytest.mark.parametrize("dof", [1, 2, 5, 7, 10, 30])
def test_t_quantile_in_the_far_tail_within_the_documented_accuracy(dof: int) -> None:
    accuracy = 1e-9 if dof <= 2 else 0.01  # documented: within 0.01 for dof >= 5 up to p = 0.995
    assert student_t_quantile(0.995, dof) == pytest.approx(T_TABLE[dof][2], abs=accuracy + ROUNDING)


def test_t_quantile_is_odd_about_the_median_and_tends_to_the_normal() -> None:
    for dof in (1, 2, 3, 8, 50):
        assert student_t_quantile(0.5, dof) == pytest.approx(0.0, abs=1e-12)
        for p in (0.6, 0.9, 0.975):
            assert student_t_quantile(1 - p, dof) == pytest.approx(-student_t_quantile(p, dof), abs=1e-9)
    assert student_t_quantile(0.975, 10**6) == pytest.approx(1.959964, abs=1e-5)
    # heavier tails with fewer degrees of freedom
    values = [student_t_quantile(0.95, dof) for dof in (1, 2, 3, 4, 7, 10, 30, 1000)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize(("probability", "dof"), [(0.0, 5), (1.0, 5), (-0.1, 5), (float("nan"), 5), (0.9, 0)])
def test_t_quantile_rejects_bad_arguments(probability: float, dof: int) -> None:
    with pytest.raises(ValueError, match="probability|dof"):
        student_t_quantile(probability, dof)


# --- interval --------------------------------------------------------------------------------------------------
def test_interval_is_mean_plus_minus_t_sqrt_one_plus_one_over_n_std() -> None:
    mean, std = np.array([2000.0, 1500.0, 3000.0]), np.array([10.0, 0.0, 40.0])
    low, high = interval(mean, std, members=2, level=0.95, inflation=1.0)  # t_{0.975, 1} = 12.706
    half = 12.706205 * math.sqrt(1.5) * std
    np.testing.assert_allclose(low, mean - half, rtol=1e-6)
    np.testing.assert_allclose(high, mean + half, rtol=1e-6)
    low8, high8 = interval(mean, std, members=8, inflation=1.0)  # default level 0.9: t_{0.95, 7} = 1.895
    assert INTERVAL_LEVEL == 0.9
    np.testing.assert_allclose(high8 - mean, 1.895 * math.sqrt(9 / 8) * std, rtol=1e-3)
    np.testing.assert_allclose(mean - low8, high8 - mean)
    assert low8[1] == high8[1] == 1500.0  # no spread, no width


def test_interval_width_scales_with_inflation_and_std_and_orders_by_level() -> None:
    mean, std = np.zeros(4), np.array([1.0, 2.0, 5.0, 0.5])
    low, high = interval(mean, std, members=8, inflation=1.0)
    width = high - low
    np.testing.assert_allclose(width / std, width[0])  # proportional to the std
    for c in (0.5, 1.7, 3.0):
        inflated_low, inflated_high = interval(mean, std, members=8, inflation=c)
        np.testing.assert_allclose(inflated_high - inflated_low, c * width, rtol=1e-12)
    widths = [np.subtract(*reversed(interval(mean, std, 8, level=p, inflation=1.0)))[0]
              for p in (0.5, 0.8, 0.9, 0.95, 0.99)]
    assert np.all(np.diff(widths) > 0)
    # more members: a better known std, a narrower interval at the same level
    assert np.subtract(*reversed(interval(mean, std, 20, inflation=1.0)))[0] < width[0]


@pytest.mark.parametrize(("members", "level", "inflation", "message"), [
    (1, 0.9, 1.0, "at least 2 members"), (8, 0.0, 1.0, "level"), (8, 1.0, 1.0, "level"),
    (8, 0.9, 0.0, "inflation"), (8, 0.9, -1.0, "inflation"), (8, 0.9, float("nan"), "inflation"),
])
def test_interval_rejects_bad_arguments(members: int, level: float, inflation: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interval(np.zeros(3), np.ones(3), members, level, inflation)


# --- coverage --------------------------------------------------------------------------------------------------
def test_coverage_counts_the_endpoints_as_inside() -> None:
    low, high = np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0])
    assert coverage(low, high, np.array([0.0, 1.0, 0.5, 1.0 + 1e-9])) == 0.75
    assert coverage(low, high, np.array([-1e-12, 2.0, 3.0, 4.0])) == 0.0
    assert coverage(np.array([[1.0]]), np.array([[1.0]]), np.array([[1.0]])) == 1.0  # a zero-width interval


def test_coverage_leaves_out_cells_not_finite_on_any_side() -> None:
    low = np.array([0.0, np.nan, 0.0, 0.0, 0.0])
    high = np.array([1.0, 1.0, np.inf, 1.0, 1.0])
    truth = np.array([0.5, 0.5, 0.5, np.nan, 2.0])
    assert coverage(low, high, truth) == 0.5  # cells 0 (in) and 4 (out) count
    assert math.isnan(coverage(np.full(3, np.nan), np.ones(3), np.zeros(3)))


def test_coverage_rejects_shapes_that_differ() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        coverage(np.zeros(3), np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match="shapes differ"):
        coverage(np.zeros((2, 3)), np.ones((3, 2)), np.zeros((2, 3)))


# --- the interval covers what it claims when the truth is one more draw ----------------------------------------
def synthetic_ensemble(cells: int, members: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell a centre mu and a spread s of their own; the members and the truth are independent N(mu, s) draws."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(1500.0, 4000.0, cells)
    spread = rng.uniform(5.0, 200.0, cells)
    grids = centre + spread * rng.standard_normal((members, cells))
    truth = centre + spread * rng.standard_normal(cells)
    return grids, truth


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_t_prediction_interval_covers_its_level_with_eight_members(level: float) -> None:
    """(truth - mean) / (std sqrt(1 + 1/N)) is exactly t with N - 1 dof here, so the coverage is `level`.

    100 000 cells: the standard error of the coverage is about 0.001. At 90 % a z instead of t (0.856) or a
    missing sqrt(1 + 1/N) (0.883) is outside +- 0.01.
    """
    grids, truth = synthetic_ensemble(100_000, 8, seed=int(level * 100))
    mean, std = ensemble_stats(grids)
    low, high = interval(mean, std, members=8, level=level, inflation=1.0)
    covered = coverage(low, high, truth)
    assert covered == pytest.approx(level, abs=0.01)
    # an inflated interval over-covers, a deflated one under-covers
    assert coverage(*interval(mean, std, members=8, level=level, inflation=1.5), truth) > covered + 0.03
    assert coverage(*interval(mean, std, members=8, level=level, inflation=0.7), truth) < covered - 0.03


def test_the_default_interval_is_inflated_by_the_tuning_chosen_factor() -> None:
    from pinnprov.experiments.ensemble import SPREAD_INFLATION

    mean, std = np.array([2000.0]), np.array([10.0])
    plain = np.subtract(*reversed(interval(mean, std, 8, inflation=1.0)))[0]
    default = np.subtract(*reversed(interval(mean, std, 8)))[0]
    assert SPREAD_INFLATION > 1.0 and default == pytest.approx(SPREAD_INFLATION * plain)
