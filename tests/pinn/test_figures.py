"""Figures: real PNGs rendered by matplotlib's Agg backend, checked by their pixels, axes and sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pinnprov.pinn.benchmark import score_grid, true_velocity
from pinnprov.pinn.figures import (
    BENCHMARK_EXTENT,
    COLORBAR_WIDTH_IN,
    DPI,
    LOSS_FIGSIZE_IN,
    PANEL_HEIGHT_IN,
    PANEL_WIDTH_IN,
    VELOCITY_CMAP,
    build_comparison_figure,
    build_loss_curves_figure,
    comparison_figure,
    grid_extent,
    loss_curves_figure,
)


def _truth() -> np.ndarray:
    return true_velocity(*score_grid())


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _count_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 6) -> int:
    return int(np.sum(np.all(np.abs(pixels - np.asarray(rgb)) <= tolerance, axis=-1)))


def _cmap_rgb(fraction: float) -> tuple[int, int, int]:
    import matplotlib

    r, g, b, _ = matplotlib.colormaps[VELOCITY_CMAP](fraction)
    return round(r * 255), round(g * 255), round(b * 255)


@pytest.mark.parametrize("count", [1, 3])
def test_comparison_png_has_one_panel_per_model_at_the_documented_size(tmp_path: Path, count: int) -> None:
    panels = [(f"model {k}", _truth(), 0.1 * k if k else None) for k in range(count)]
    path = comparison_figure(tmp_path / "fig" / "comparison.png", panels)

    assert path == tmp_path / "fig" / "comparison.png"
    with Image.open(path) as image:
        assert image.size == (round((PANEL_WIDTH_IN * count + COLORBAR_WIDTH_IN) * DPI), round(PANEL_HEIGHT_IN * DPI))
    figure = build_comparison_figure(panels)
    velocity_axes = [ax for ax in figure.axes if ax.images]
    assert len(velocity_axes) == count and len(figure.axes) == count + 1  # + the shared colour bar
    assert velocity_axes[0].get_title() == "model 0"
    if count > 1:
        assert velocity_axes[1].get_title() == "model 1\nR² = 0.10"
    for ax in velocity_axes:
        assert ax.yaxis_inverted()  # depth grows downwards
        assert ax.get_ylim() == (BENCHMARK_EXTENT[2], BENCHMARK_EXTENT[3])
        assert ax.images[0].get_clim() == (1500.0, 4000.0)  # one shared scale
    assert figure.axes[-1].get_ylabel() == "velocity (m/s)"


def test_shared_colour_scale_maps_the_same_velocity_to_the_same_colour(tmp_path: Path) -> None:
    slow, fast = np.full((44, 32), 1500.0), np.full((44, 32), 4000.0)
    pixels = _pixels(
        comparison_figure(tmp_path / "two.png", [("slow", slow, None), ("fast", fast, None)], sensors=None)
    )
    panel_area = (PANEL_WIDTH_IN * DPI) * (PANEL_HEIGHT_IN * DPI)
    # each constant panel fills a large block with the colour map's end colour (plus the colour bar's ends)
    assert _count_colour(pixels, _cmap_rgb(0.0)) > 0.2 * panel_area
    assert _count_colour(pixels, _cmap_rgb(1.0)) > 0.2 * panel_area


def test_true_model_is_drawn_with_depth_down(tmp_path: Path) -> None:
    """The fast (yellow) disc at 10 m depth must appear above the slow (dark) disc at 18 m depth."""
    pixels = _pixels(comparison_figure(tmp_path / "truth.png", [("True model", _truth(), None)], sensors=None))
    width = pixels.shape[1]
    panel = pixels[:, : int(width * 0.7)]  # leave out the colour bar
    fast_rows = np.flatnonzero(np.all(np.abs(panel - _cmap_rgb(1.0)) <= 6, axis=-1).any(axis=1))
    slow_rows = np.flatnonzero(np.all(np.abs(panel - _cmap_rgb(0.0)) <= 6, axis=-1).any(axis=1))
    assert fast_rows.size and slow_rows.size
    assert fast_rows.mean() < slow_rows.mean()  # image row 0 is the top


def test_sensors_are_marked() -> None:
    figure = build_comparison_figure([("True model", _truth(), None)])
    ax = figure.axes[0]
    sources, receivers = ax.lines[0], ax.lines[1]
    assert sources.get_label() == "sources" and len(sources.get_xdata()) == 10
    assert set(np.asarray(receivers.get_xdata())) == {20.0}
    assert len(build_comparison_figure([("x", _truth(), None)], sensors=None).axes[0].lines) == 0


@pytest.mark.parametrize(
    ("panels", "message"),
    [
        ([], "at least one"),
        ([("a", np.ones((44, 32)), None), ("b", np.ones((44, 31)), None)], r"shape \(44, 31\) differs"),
        ([("a", np.ones(44), None)], "2-D"),
        ([("a", np.ones((44, 32)), float("nan"))], "finite"),
    ],
)
def test_bad_panels_are_rejected(tmp_path: Path, panels: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        comparison_figure(tmp_path / "bad.png", panels)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_bad_extent_suffix_and_range_are_rejected(tmp_path: Path) -> None:
    panels = [("a", _truth(), None)]
    with pytest.raises(ValueError, match="extent"):
        comparison_figure(tmp_path / "a.png", panels, (0.0, 20.0, 0.0, 27.5))  # depth pointing up
    with pytest.raises(ValueError, match=r"\.png"):
        comparison_figure(tmp_path / "a.pdf", panels)
    with pytest.raises(ValueError, match="velocity_range"):
        comparison_figure(tmp_path / "a.png", panels, velocity_range=(4000.0, 1500.0))
    assert list(tmp_path.iterdir()) == []


def test_grid_extent_is_the_outer_cell_edges() -> None:
    assert grid_extent(*score_grid()) == pytest.approx(BENCHMARK_EXTENT)


def test_loss_curves_png_is_log_scale_with_one_line_per_curve(tmp_path: Path) -> None:
    epochs = np.arange(1, 501)
    curves = {"loss": (epochs, 1.0 / epochs), "loss_residual": (epochs, 0.1 / np.sqrt(epochs))}
    path = loss_curves_figure(tmp_path / "loss.png", curves, "Adam, tanh")

    with Image.open(path) as image:
        assert image.size == (round(LOSS_FIGSIZE_IN[0] * DPI), round(LOSS_FIGSIZE_IN[1] * DPI))
    ax = build_loss_curves_figure(curves, "Adam, tanh").axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "Adam, tanh"
    assert [line.get_label() for line in ax.lines] == ["loss", "loss_residual"]


def test_loss_curves_keep_diverged_epochs_as_gaps_and_reject_bad_curves(tmp_path: Path) -> None:
    epochs = np.arange(5)
    ax = build_loss_curves_figure({"loss": (epochs, np.array([1.0, 0.5, np.inf, np.nan, 0.2]))}, "t").axes[0]
    assert np.isnan(ax.lines[0].get_ydata()[2])
    with pytest.raises(ValueError, match="> 0"):
        loss_curves_figure(tmp_path / "l.png", {"loss": (epochs, np.array([1.0, 0.0, 0.1, 0.1, 0.1]))}, "t")
    with pytest.raises(ValueError, match="equal length"):
        loss_curves_figure(tmp_path / "l.png", {"loss": (epochs, np.ones(4))}, "t")
    with pytest.raises(ValueError, match="at least one"):
        loss_curves_figure(tmp_path / "l.png", {}, "t")
    assert list(tmp_path.iterdir()) == []


def test_figures_need_no_display_and_never_load_pyplot(tmp_path: Path) -> None:
    """Headless training nodes: rendering must not touch pyplot or a GUI backend."""
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from pinnprov.pinn.figures import comparison_figure, loss_curves_figure\n"
        f"comparison_figure(Path({str(tmp_path / 'c.png')!r}), [('a', np.full((4, 3), 2000.0), 0.5)],"
        " (0, 3, 4, 0), sensors=None)\n"
        f"loss_curves_figure(Path({str(tmp_path / 'l.png')!r}), {{'loss': (np.arange(3), np.ones(3))}}, 't')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "l.png").stat().st_size > 0


def test_colour_scale_can_be_fitted_to_user_velocities() -> None:
    """GPR velocities (~1e8 m/s) would be one flat colour on the seismic 1500-4000 scale."""
    gpr = np.linspace(0.8e8, 1.2e8, 12).reshape(4, 3)
    figure = build_comparison_figure([("GPR", gpr, None)], (0, 3, 4, 0), sensors=None, velocity_range=None)
    assert figure.axes[0].images[0].get_clim() == (0.8e8, 1.2e8)
    constant = build_comparison_figure(
        [("c", np.full((4, 3), 2500.0), None)], (0, 3, 4, 0), sensors=None, velocity_range=None
    )
    low, high = constant.axes[0].images[0].get_clim()
    assert low < 2500.0 < high
    with pytest.raises(ValueError, match="no finite velocity"):
        build_comparison_figure([("nan", np.full((4, 3), np.nan), None)], (0, 3, 4, 0), velocity_range=None)
