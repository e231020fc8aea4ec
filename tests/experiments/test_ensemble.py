"""Ensemble statistics, the std-vs-error rank correlation, the std panel of Figure 2 and `--ensemble`'s bad input.

All in-process and NumPy/matplotlib only (no training): the end-to-end run is tests/test_ensemble_run.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pinnprov.cli import main
from pinnprov.experiments.ensemble import ensemble_stats, rank_correlation, ranks, uncertainty_skill
from pinnprov.pinn.benchmark import score_grid, true_velocity
from pinnprov.pinn.figures import (
    COLORBAR_WIDTH_IN,
    DPI,
    PANEL_WIDTH_IN,
    STD_LABEL,
    build_comparison_figure,
    comparison_figure,
)


# --- ensemble_stats ---------------------------------------------------------------------------------
def test_mean_and_sample_std_per_cell() -> None:
    grids = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[3.0, 2.0], [5.0, 8.0]]), np.array([[2.0, 2.0], [4.0, 6.0]])]
    mean, std = ensemble_stats(grids)
    np.testing.assert_allclose(mean, [[2.0, 2.0], [4.0, 6.0]])
    np.testing.assert_allclose(std, [[1.0, 0.0], [1.0, 2.0]])  # ddof = 1: sqrt(((-1)^2 + 1^2 + 0) / 2) = 1
    stacked_mean, stacked_std = ensemble_stats(np.stack(grids))
    np.testing.assert_array_equal(stacked_mean, mean)
    np.testing.assert_array_equal(stacked_std, std)


def test_a_cell_that_diverged_in_one_member_is_nan_not_averaged_away() -> None:
    mean, std = ensemble_stats([np.array([1.0, np.nan, 3.0]), np.array([3.0, 5.0, np.inf])])
    assert mean[0] == 2.0 and np.isnan(mean[1]) and np.isnan(mean[2])
    assert std[0] == pytest.approx(np.sqrt(2.0)) and np.isnan(std[1]) and np.isnan(std[2])


@pytest.mark.parametrize(("grids", "message"), [
    ([np.ones((2, 2))], "at least 2 members"),
    ([np.ones((2, 2)), np.ones((2, 3))], None),  # ragged: NumPy refuses to stack them
    (np.ones(3), "expected N grids"),
])
def test_bad_ensembles_are_refused(grids: object, message: str | None) -> None:
    with pytest.raises(ValueError, match=message):
        ensemble_stats(grids)  # type: ignore[arg-type]


# --- ranks and the rank correlation --------------------------------------------------------------------
def test_ties_share_their_average_rank() -> None:
    np.testing.assert_array_equal(ranks(np.array([10.0, 20.0, 10.0, 30.0, 20.0, 20.0])), [1.5, 4.0, 1.5, 6.0, 4.0, 4.0])


def test_skill_is_one_when_the_std_orders_the_cells_like_the_error_and_minus_one_when_reversed() -> None:
    error = np.array([[5.0, 1.0], [300.0, 20.0]])
    assert uncertainty_skill(error**2 + 1.0, error) == pytest.approx(1.0)  # monotone: only the order counts
    assert uncertainty_skill(-np.log(error), error) == pytest.approx(-1.0)


def test_skill_matches_the_textbook_spearman_with_ties() -> None:
    # Ranks (1.5, 1.5, 3, 4, 5) and (2, 1, 4, 3, 5), centred (-1.5, -1.5, 0, 1, 2) and (-1, -2, 1, 0, 2):
    # rho = 8.5 / sqrt(9.5 * 10).
    std = np.array([0.1, 0.1, 0.3, 0.4, 0.5])
    error = np.array([20.0, 10.0, 40.0, 30.0, 50.0])
    assert uncertainty_skill(std, error) == pytest.approx(8.5 / np.sqrt(95.0), abs=1e-12)


def test_an_uninformative_std_scores_near_zero_and_a_useful_one_well_above() -> None:
    rng = np.random.default_rng(5)
    error = rng.exponential(100.0, size=(44, 32))
    assert abs(uncertainty_skill(rng.exponential(100.0, size=(44, 32)), error)) < 0.1
    assert uncertainty_skill(error * rng.lognormal(0.0, 0.3, size=error.shape), error) > 0.8


def test_undefined_correlations_are_nan_and_nonfinite_cells_are_left_out() -> None:
    assert np.isnan(uncertainty_skill(np.zeros(5), np.arange(5.0)))  # a constant std ranks nothing
    assert np.isnan(rank_correlation(np.array([1.0, np.nan]), np.array([2.0, 3.0])))  # one usable pair
    with_gap = uncertainty_skill(np.array([1.0, 2.0, np.nan, 3.0]), np.array([1.0, 2.0, 99.0, 3.0]))
    assert with_gap == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        uncertainty_skill(np.zeros((2, 2)), np.zeros(4))


# --- the std panel of Figure 2 -----------------------------------------------------------------------
def test_the_std_panel_has_its_own_colour_scale_and_bar(tmp_path: Path) -> None:
    truth = true_velocity(*score_grid())
    spread = np.linspace(0.0, 250.0, truth.size).reshape(truth.shape)
    panels = [("True model", truth, None), ("Ensemble mean", truth + 10.0, 0.5)]
    path = comparison_figure(tmp_path / "comparison.png", panels, std_panel=("Ensemble std", spread))
    with Image.open(path) as image:
        assert image.size[0] == round((PANEL_WIDTH_IN * 3 + 2 * COLORBAR_WIDTH_IN) * DPI)

    figure = build_comparison_figure(panels, std_panel=("Ensemble std", spread))
    images = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in images] == ["True model", "Ensemble mean\nR² = 0.50", "Ensemble std"]
    assert images[0].images[0].get_clim() == images[1].images[0].get_clim() == (1500.0, 4000.0)
    assert images[2].images[0].get_clim() == (0.0, 250.0)
    assert images[2].images[0].get_cmap().name != images[0].images[0].get_cmap().name
    colour_bars = sorted(ax.get_ylabel() for ax in figure.axes if not ax.images)
    assert colour_bars == [STD_LABEL, "velocity (m/s)"] and STD_LABEL == "Ensemble std (m/s)"


def test_without_a_std_panel_the_figure_is_unchanged() -> None:
    truth = true_velocity(*score_grid())
    figure = build_comparison_figure([("PINN", truth, 0.4)])
    assert len(figure.axes) == 2 and figure.axes[-1].get_ylabel() == "velocity (m/s)"


@pytest.mark.parametrize(("spread", "message"), [
    (np.zeros((3, 3)), "differs from the first panel's"),
    (np.full((44, 32), np.nan), "no finite value"),
    (np.full((44, 32), -1.0), "cannot be negative"),
])
def test_bad_std_panels_are_refused(spread: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_comparison_figure([("PINN", true_velocity(*score_grid()), None)], std_panel=("std", spread))


# --- the flag ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["--ensemble", "0"], "--ensemble: must be at least 1 (1 is a single run), got 0"),
    (["--ensemble", "-2"], "--ensemble: must be at least 1"),
    (["--ensemble", "two"], "argument --ensemble: invalid int value: 'two'"),
    (["--ensemble", "3", "--no-capture"], "--ensemble: needs provenance capture"),
    (["--ensemble", "3", "--threads", "2"], "--threads: not with --ensemble"),
    (["--ensemble", "3", "--epochs", "0"], "epochs: must be at least 1"),  # the members' config is checked first
])
def test_bad_ensembles_fail_in_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["train", *argv, "--store", f"sqlite:///{tmp_path / 'x.db'}", "--out", str(tmp_path / "out")])
    except SystemExit as exit_:  # argparse errors
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("pinnprov train: error: ")
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "out").exists()


def test_members_get_train_flags_as_given_but_not_the_drivers_own() -> None:
    from pinnprov.experiments.ensemble_run import member_args
    from pinnprov.experiments.training import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--epochs", "40", "--lr", "0.001", "--no-jit", "--activation", "sine", "--seed", "7",
                              "--threads", "3", "--out", "o", "--store", "sqlite:///x.db", "--with-baseline",
                              "--capture-every", "5", "--config", "tiny.json"])
    assert member_args(args) == ["--config", "tiny.json", "--activation", "sine", "--epochs", "40", "--lr", "0.001",
                                 "--no-jit", "--capture-every", "5"]
