"""The paper's figures as PNG files: velocity models side by side (Figure 2) and loss curves (Figure 3).

Rendering uses matplotlib's Agg backend through an explicit `Figure` (no pyplot, no global state, no display), so
it works on headless training nodes and from threads. Velocity panels share one colour scale so the eye compares
values, not per-panel stretches; depth grows downwards, as in a borehole log. An ensemble's per-cell standard
deviation is not a velocity, so its optional panel gets a colour map and colour bar of its own.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from pinnprov.pinn.benchmark import DOMAIN, SCORE_CELL_M, SCORE_CELLS_X, SCORE_CELLS_Z, acquisition

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# (x_min, x_max, z_max, z_min): the benchmark's scoring grid, 0..20 m across and 0..27.5 m deep (44 cells of
# 0.625 m; the last half cell of the 28 m domain is not scored, so it is not drawn either).
BENCHMARK_EXTENT = (
    DOMAIN.x_min,
    DOMAIN.x_min + SCORE_CELLS_X * SCORE_CELL_M,
    DOMAIN.z_min + SCORE_CELLS_Z * SCORE_CELL_M,
    DOMAIN.z_min,
)
VELOCITY_RANGE_M_S = (1500.0, 4000.0)  # the benchmark's slowest and fastest velocities
VELOCITY_CMAP = "viridis"  # perceptually uniform, readable in greyscale print
STD_CMAP = "magma"  # a different map, so the spread is never read as a velocity
STD_LABEL = "Ensemble std (m/s)"
PANEL_WIDTH_IN = 3.2
PANEL_HEIGHT_IN = 4.6
COLORBAR_WIDTH_IN = 1.1
DPI = 150
LOSS_FIGSIZE_IN = (7.0, 4.2)
LAYOUT_PAD_IN = 0.1

Sensors = tuple[np.ndarray, np.ndarray]  # (sources (n, 2), receivers (m, 2)) as (x, z) in metres


def benchmark_sensors() -> Sensors:
    """Distinct source and receiver positions of the benchmark (10 each)."""
    sources, receivers = acquisition()
    return np.unique(sources, axis=0), np.unique(receivers, axis=0)


def grid_extent(grid_x: np.ndarray, grid_z: np.ndarray) -> tuple[float, float, float, float]:
    """(x_min, x_max, z_max, z_min) of the cells whose centres are the regular meshgrid `grid_x`, `grid_z`."""
    xs, zs = np.asarray(grid_x)[0, :], np.asarray(grid_z)[:, 0]
    dx = float(xs[1] - xs[0]) if xs.size > 1 else 1.0
    dz = float(zs[1] - zs[0]) if zs.size > 1 else dx
    return float(xs[0] - dx / 2), float(xs[-1] + dx / 2), float(zs[-1] + dz / 2), float(zs[0] - dz / 2)


def comparison_figure(
    path: Path,
    panels: Sequence[tuple[str, np.ndarray, float | None]],
    extent: tuple[float, float, float, float] = BENCHMARK_EXTENT,
    *,
    sensors: Sensors | Literal["benchmark"] | None = "benchmark",
    velocity_range: tuple[float, float] | None = VELOCITY_RANGE_M_S,
    suptitle: str | None = None,
    std_panel: tuple[str, np.ndarray] | None = None,
) -> Path:
    """Write a PNG with one velocity panel per (title, grid (rows = depth), R² or None); return the path.

    `extent` is (x_min, x_max, z_max, z_min) in metres, the outer edges of the grid cells. `sensors` marks
    sources (stars) and receivers (triangles); "benchmark" uses the benchmark's boreholes, None draws none.
    `velocity_range` is the shared colour scale in m/s (the benchmark's 1500-4000 by default); None fits it to the
    finite values of all panels, for user data whose velocities may lie anywhere. `std_panel` (title, grid of the
    same shape in m/s) adds a last panel, an ensemble's spread, on its own scale from 0 to its largest value.
    """
    figure = build_comparison_figure(panels, extent, sensors=sensors, velocity_range=velocity_range, suptitle=suptitle,
                                     std_panel=std_panel)
    return _save_png(figure, path)


def build_comparison_figure(
    panels: Sequence[tuple[str, np.ndarray, float | None]],
    extent: tuple[float, float, float, float] = BENCHMARK_EXTENT,
    *,
    sensors: Sensors | Literal["benchmark"] | None = "benchmark",
    velocity_range: tuple[float, float] | None = VELOCITY_RANGE_M_S,
    suptitle: str | None = None,
    std_panel: tuple[str, np.ndarray] | None = None,
) -> Figure:
    """The Figure behind `comparison_figure`, for callers that embed or inspect it."""
    from matplotlib.figure import Figure

    grids = _check_panels(panels)
    spread = None if std_panel is None else _check_std_panel(std_panel, grids[0].shape)
    x_min, x_max, z_max, z_min = _check_extent(extent)
    low, high = _fit_range(grids) if velocity_range is None else velocity_range
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"velocity_range: need finite low < high, got {velocity_range!r}")
    marks = benchmark_sensors() if isinstance(sensors, str) and sensors == "benchmark" else sensors

    count = len(grids)
    extra_width = 0.0 if spread is None else PANEL_WIDTH_IN + COLORBAR_WIDTH_IN
    figure = Figure(
        figsize=(PANEL_WIDTH_IN * count + COLORBAR_WIDTH_IN + extra_width, PANEL_HEIGHT_IN), dpi=DPI,
        layout="constrained",
    )
    _pad_layout(figure)  # default 3 pt pad clips "(m)" and "²"
    all_axes = figure.subplots(1, count + (spread is not None), sharex=True, sharey=True, squeeze=False)[0]
    axes = all_axes[:count]
    image = None
    for ax, (title, _, score), grid in zip(axes, panels, grids, strict=True):
        # origin="upper" with extent (.., z_max, z_min): row 0 (shallowest) at the top, depth axis pointing down.
        image = ax.imshow(
            np.ma.masked_invalid(grid),
            origin="upper",
            extent=(x_min, x_max, z_max, z_min),
            vmin=low,
            vmax=high,
            cmap=VELOCITY_CMAP,
            interpolation="nearest",
            aspect="equal",
        )
        ax.set_title(title if score is None else f"{title}\nR² = {score:.2f}")
        ax.set_xlabel("x (m)")
        if marks is not None:
            _draw_sensors(ax, marks)
        ax.set_xlim(x_min, x_max)
        ax.set_ylim(z_max, z_min)  # depth down (sharey: set once for all)
    axes[0].set_ylabel("depth z (m)")
    if marks is not None:
        axes[-1].legend(loc="lower right", fontsize="x-small", framealpha=0.8)
    assert image is not None  # _check_panels: at least one panel
    figure.colorbar(image, ax=list(axes), label="velocity (m/s)", shrink=0.9)
    if spread is not None and std_panel is not None:
        _draw_std(figure, all_axes[-1], std_panel[0], spread, (x_min, x_max, z_max, z_min), marks)
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def loss_curves_figure(
    path: Path,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    *,
    ylabel: str = "loss",
) -> Path:
    """Write a PNG of loss against epoch, one line per named curve, log-scale y (the paper's Figure 3)."""
    return _save_png(build_loss_curves_figure(curves, title, ylabel=ylabel), path)


def build_loss_curves_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, *, ylabel: str = "loss"
) -> Figure:
    """The Figure behind `loss_curves_figure`. NaN/inf losses (a diverged epoch) are drawn as gaps."""
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("curves: need at least one curve")
    checked: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, (epochs, loss) in curves.items():
        epochs, loss = np.asarray(epochs, dtype=np.float64), np.asarray(loss, dtype=np.float64)
        if epochs.ndim != 1 or epochs.shape != loss.shape or epochs.size == 0:
            raise ValueError(
                f"curve {name!r}: epochs and loss must be non-empty 1-D arrays of equal length, "
                f"got {epochs.shape} and {loss.shape}"
            )
        if np.any(loss[np.isfinite(loss)] <= 0):
            raise ValueError(f"curve {name!r}: loss values must be > 0 for a log-scale axis")
        checked.append((name, epochs, np.where(np.isfinite(loss), loss, np.nan)))

    figure = Figure(figsize=LOSS_FIGSIZE_IN, dpi=DPI, layout="constrained")
    _pad_layout(figure)
    ax = figure.subplots()
    for name, epochs, loss in checked:
        ax.plot(epochs, loss, label=name, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def _check_panels(panels: Sequence[tuple[str, np.ndarray, float | None]]) -> list[np.ndarray]:
    if not panels:
        raise ValueError("panels: need at least one (title, velocity grid, R²) panel")
    grids = [np.asarray(grid, dtype=np.float64) for _, grid, _ in panels]
    first = grids[0].shape
    for (title, _, score), grid in zip(panels, grids, strict=True):
        if grid.ndim != 2 or min(grid.shape) == 0:
            raise ValueError(f"panel {title!r}: velocity grid must be a non-empty 2-D array, got shape {grid.shape}")
        if grid.shape != first:
            raise ValueError(f"panel {title!r}: grid shape {grid.shape} differs from the first panel's {first}")
        if score is not None and not math.isfinite(score):
            raise ValueError(f"panel {title!r}: R² must be a finite number or None, got {score!r}")
    return grids


def _check_std_panel(std_panel: tuple[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    title, grid = std_panel
    spread = np.asarray(grid, dtype=np.float64)
    if spread.shape != shape:
        raise ValueError(f"std panel {title!r}: grid shape {spread.shape} differs from the first panel's {shape}")
    finite = spread[np.isfinite(spread)]
    if finite.size == 0:
        raise ValueError(f"std panel {title!r}: no finite value to draw")
    if np.any(finite < 0):
        raise ValueError(f"std panel {title!r}: a standard deviation cannot be negative")
    return spread


def _draw_std(figure: Figure, ax: Axes, title: str, spread: np.ndarray, extent: tuple[float, float, float, float],
              marks: Sensors | None) -> None:
    """The spread panel: 0 (members agree) to its largest value, its own colour map and colour bar."""
    high = float(np.nanmax(spread))
    image = ax.imshow(np.ma.masked_invalid(spread), origin="upper", extent=extent, vmin=0.0,
                      vmax=high if high > 0 else 1.0, cmap=STD_CMAP, interpolation="nearest", aspect="equal")
    ax.set_title(title)
    ax.set_xlabel("x (m)")
    if marks is not None:
        _draw_sensors(ax, marks)
    figure.colorbar(image, ax=ax, label=STD_LABEL, shrink=0.9)


def _fit_range(grids: list[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([grid[np.isfinite(grid)] for grid in grids])
    if values.size == 0:
        raise ValueError("panels: no finite velocity to draw")
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6 * max(abs(high), 1.0):  # a constant model: centre it in a +-5 % scale
        low, high = low - 0.05 * abs(low) - 1.0, high + 0.05 * abs(high) + 1.0
    return low, high


def _check_extent(extent: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if len(extent) != 4 or not all(math.isfinite(v) for v in extent):
        raise ValueError(f"extent: need four finite numbers (x_min, x_max, z_max, z_min), got {extent!r}")
    x_min, x_max, z_max, z_min = (float(v) for v in extent)
    if not (x_max > x_min and z_max > z_min):
        raise ValueError(f"extent: need x_max > x_min and z_max > z_min (depth down), got {extent!r}")
    return x_min, x_max, z_max, z_min


def _draw_sensors(ax: Axes, sensors: Sensors) -> None:
    sources, receivers = (np.asarray(points, dtype=np.float64).reshape(-1, 2) for points in sensors)
    for points, marker, size, label in ((sources, "*", 9, "sources"), (receivers, "v", 6, "receivers")):
        ax.plot(points[:, 0], points[:, 1], marker=marker, markersize=size, color="white", label=label, clip_on=False,
                zorder=3, markeredgecolor="black", markeredgewidth=0.6, linestyle="none")


def _pad_layout(figure: Figure) -> None:
    """Pad the figure's constrained layout by LAYOUT_PAD_IN on every side."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = figure.get_layout_engine()
    assert isinstance(engine, ConstrainedLayoutEngine)  # every figure here is made with layout="constrained"
    engine.set(h_pad=LAYOUT_PAD_IN, w_pad=LAYOUT_PAD_IN)


def _save_png(figure: Figure, path: Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a truncated PNG where a good one was."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: figures are written as PNG, the file name must end in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    # a plain open (not mkstemp), so the PNG gets the user's umask permissions
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=DPI)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
