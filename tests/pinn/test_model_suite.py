"""The model suite (pinn/model_suite.py): cases, split, data generation and scoring against their exact models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pinnprov.pinn import benchmark, model_suite
from pinnprov.pinn.dataset import Domain
from pinnprov.pinn.metrics import r2
from pinnprov.pinn.scoring import cell_centres, grid_for, score_cells, true_model


def test_split_is_fixed_disjoint_and_covers_the_kinds_the_issue_names() -> None:
    tuning, test = model_suite.cases("tuning"), model_suite.cases("test")
    assert len(tuning) + len(test) == len(model_suite.CASES) >= 8
    assert not {c.name for c in tuning} & {c.name for c in test}
    paper = [c for c in model_suite.CASES if c.section is None]
    assert {c.sensors_per_borehole for c in paper if c.split == "tuning"} == {10, 20}
    assert {c.sensors_per_borehole for c in paper if c.split == "test"} == {10, 20}
    # the other sections (issue 23) are on both sides too
    assert {c.split for c in model_suite.CASES if c.section is not None} == {"tuning", "test"}
    assert len({c.noise_seed for c in model_suite.CASES}) == len(model_suite.CASES)
    with pytest.raises(ValueError, match="unknown split"):
        model_suite.cases("holdout")
    with pytest.raises(ValueError, match="unknown suite case"):
        model_suite.case("no-such-model")


PAPER_SECTION = [c.name for c in model_suite.CASES if c.section is None]
OWN_SECTION = [c.name for c in model_suite.CASES if c.section is not None]


@pytest.mark.parametrize("name", PAPER_SECTION)
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


# --- the cases on sections of their own (issue 23) ---------------------------------------------------------
def test_the_new_sections_are_the_declared_ones() -> None:
    assert OWN_SECTION == ["narrow-deep-layers", "wide-shallow-sparse", "narrow-deep-pair", "wide-smooth-partial",
                           "sparse-fast-block"]
    for name in OWN_SECTION:
        case = model_suite.case(name)
        assert case.sensors_per_borehole == 0 and case.section is not None
        assert case.domain == case.section.domain != benchmark.DOMAIN


@pytest.mark.parametrize("name", OWN_SECTION)
def test_each_new_case_is_crosshole_data_on_its_own_section(name: str) -> None:
    case = model_suite.case(name)
    section = case.section
    assert section is not None
    data = case.data()
    h = benchmark.SOLVER_SPACING_M
    assert data.domain == Domain(0.0, section.width_m, 0.0, section.depth_m)
    assert np.all(data.domain.contains(data.sources)) and np.all(data.domain.contains(data.receivers))
    assert np.all(data.sources[:, 0] == 0.0) and np.all(data.receivers[:, 0] == section.width_m)
    for z in (data.sources[:, 1], data.receivers[:, 1]):  # on the solver's nodes, below the surface
        np.testing.assert_allclose(z / h, np.round(z / h), atol=1e-9)
        assert z.min() > 0
    assert data.sources[:, 1].max() == pytest.approx(section.source_bottom_m, abs=h / 2)
    assert data.receivers[:, 1].max() == pytest.approx(section.receiver_bottom_m, abs=h / 2)
    assert data.sources[:, 1].max() <= section.depth_m and data.receivers[:, 1].max() <= section.depth_m
    # distinct sensor depths: the declared counts (every sensor fires or records when all pairs are picked)
    source_depths, receiver_depths = np.unique(data.sources[:, 1]), np.unique(data.receivers[:, 1])
    if section.pick_fraction == 1.0:
        assert (len(source_depths), len(receiver_depths)) == (section.sources, section.receivers)
    else:
        assert len(source_depths) <= section.sources and len(receiver_depths) <= section.receivers
    # the noise model and the physics hold on other sections too
    assert data.noise_rms_s is not None
    assert data.noise_rms_s == pytest.approx(benchmark.expected_noise_rms(data.traveltimes))
    grid_x, grid_z = grid_for(data)
    velocity = case.true_velocity(grid_x, grid_z)
    distance = np.hypot(*(data.receivers - data.sources).T)
    assert np.all(data.traveltimes <= distance / velocity.min() * 1.01)
    assert np.all(data.traveltimes >= distance / velocity.max() * 0.99)
    assert velocity.std() > 0


@pytest.mark.parametrize(("name", "sources", "receivers"), [
    ("narrow-deep-layers", 16, 24), ("wide-shallow-sparse", 12, 8), ("narrow-deep-pair", 10, 18),
    ("wide-smooth-partial", 14, 10),
])
def test_unequal_sensor_counts_where_declared(name: str, sources: int, receivers: int) -> None:
    section = model_suite.case(name).section
    assert section is not None and (section.sources, section.receivers) == (sources, receivers)
    all_sources, all_receivers = dataclasses.replace(section, pick_fraction=1.0).acquisition()
    assert len(np.unique(all_sources[:, 1])) == sources and len(np.unique(all_receivers[:, 1])) == receivers


@pytest.mark.parametrize("name", OWN_SECTION)
def test_pick_fraction_keeps_that_share_of_distinct_pairs(name: str) -> None:
    section = model_suite.case(name).section
    assert section is not None
    data = model_suite.case(name).data()
    pairs = section.sources * section.receivers
    expected = pairs if section.pick_fraction == 1.0 else int(round(section.pick_fraction * pairs))
    assert data.picks == expected
    assert len({(s, r) for s, r in zip(data.sources[:, 1], data.receivers[:, 1], strict=True)}) == expected
    if section.pick_fraction < 1.0:  # a random subset, fixed by the pick seed, not the first rows
        first, second = section.acquisition(), section.acquisition()
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
        full = dataclasses.replace(section, pick_fraction=1.0).acquisition()
        assert not np.array_equal(data.sources, full[0][:expected])


def test_declared_pick_fractions() -> None:
    assert model_suite.case("wide-shallow-sparse").data().picks == 58  # round(0.6 * 12 * 8) = round(57.6)
    assert model_suite.case("sparse-fast-block").data().picks == 58  # round(0.4 * 12 * 12) = round(57.6)


@pytest.mark.parametrize("name", OWN_SECTION)
def test_score_grid_covers_the_cases_own_domain_with_0625_m_cells(name: str) -> None:
    case = model_suite.case(name)
    data = case.data()
    grid_x, grid_z = grid_for(data)
    size = benchmark.SCORE_CELL_M
    domain = case.domain
    assert grid_x.shape == grid_z.shape == (int(domain.depth / size), int(domain.width / size))
    np.testing.assert_allclose(np.diff(grid_x, axis=1), size)
    np.testing.assert_allclose(np.diff(grid_z, axis=0), size)
    assert grid_x.min() == pytest.approx(domain.x_min + size / 2) and grid_z.min() == pytest.approx(size / 2)
    # the whole cells reach to within one cell of the far edges, and none sticks out
    assert 0 <= domain.x_max - (grid_x.max() + size / 2) < size - 1e-9
    assert 0 <= domain.z_max - (grid_z.max() + size / 2) < size - 1e-9
    np.testing.assert_array_equal(grid_x, score_cells(domain)[0])


def test_the_benchmarks_score_grid_is_unchanged() -> None:
    for data in (benchmark.crosshole_benchmark(), model_suite.case("fast-small").data()):
        grid_x, grid_z = grid_for(data)
        expected_x, expected_z = benchmark.score_grid()
        assert grid_x.shape == (benchmark.SCORE_CELLS_Z, benchmark.SCORE_CELLS_X) == (44, 32)
        np.testing.assert_allclose(grid_x, expected_x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(grid_z, expected_z, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", OWN_SECTION)
def test_true_model_is_the_cases_own(name: str) -> None:
    case = model_suite.case(name)
    data = case.data()
    exact = true_model(data)
    assert exact is not None and exact == case.true_velocity
    grid_x, grid_z = grid_for(data)
    np.testing.assert_array_equal(exact(grid_x, grid_z), case.velocity(grid_x, grid_z))
    others = [c for c in model_suite.CASES if c.name != name]
    assert all(not np.array_equal(exact(grid_x, grid_z), other.true_velocity(grid_x, grid_z)) for other in others)


@pytest.mark.parametrize("name", ["narrow-deep-layers", "sparse-fast-block", "fast-small"])
def test_data_on_another_domain_than_its_cases_has_no_true_model(name: str) -> None:
    data = model_suite.case(name).data()
    other = Domain(0.0, data.domain.width + 2.0, 0.0, data.domain.depth)
    moved = dataclasses.replace(data, domain=other)
    assert true_model(moved) is None
    np.testing.assert_array_equal(grid_for(moved)[0], cell_centres(other, 64)[0])  # user data's grid, not scored
