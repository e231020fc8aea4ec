"""The classical reference: PyGIMLi's ray-based traveltime tomography on the same picks as the PINN.

Settings follow DESIGN.md (``lam=1000``, ``useGradient=False``) and PyGIMLi's own crosshole example, which this
benchmark reproduces: a regular grid of square cells (0.625 m on the benchmark, i.e. a quarter of the 2.5 m sensor
spacing, the same cells the score uses), three secondary nodes per cell edge for the Dijkstra forward solver and
``zWeight=1`` (isotropic smoothness). Nothing here is tuned against the true model; the true model only *scores*.
Measured on the benchmark with these defaults: R² 0.310, RMSE 394 m/s, chi2 3.2 after 10 iterations (DESIGN.md
expects about 0.29, the paper 0.32). Incidental numerical detail moves R² by about 0.03: 0.282 / 0.291 / 0.310 with
1 / 2 / 3 secondary nodes, and 0.317 / 0.288 / 0.309 when the same grid is built top-down (PyGIMLi's example).

Coordinates: our z is depth, growing downwards; PyGIMLi meshes are (x, y) with y up. We hand PyGIMLi y = -z, so a
sensor at 2.5 m depth sits at y = -2.5 and the domain [z_min, z_max] becomes y in [-z_max, -z_min]; results are
mapped back with the same sign flip.

PyGIMLi's Dijkstra solver snaps each sensor to the nearest node of its refined mesh. Benchmark sensors lie on nodes;
other sensors move by at most h / (2 (sec_nodes + 1)) in x and z (0.08 m for h = 0.625 m and three secondary nodes).

The inverted cells are sampled (piecewise constant) on the same grid as the PINN, `pinnprov.pinn.scoring.grid_for`: the
benchmark's 44 x 32 scoring grid, whose cell centres coincide with the inversion cells, or a grid over a user's domain.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np

from pinnprov.pinn.benchmark import NOISE_ABSOLUTE_S, NOISE_RELATIVE
from pinnprov.pinn.dataset import Domain, TraveltimeData
from pinnprov.pinn.metrics import r2, rmse, traveltime_rms
from pinnprov.pinn.scoring import grid_for, true_model

DEFAULT_LAM = 1000.0
DEFAULT_SEC_NODES = 3
DEFAULT_Z_WEIGHT = 1.0
DEFAULT_MAX_ITER = 20
CELLS_ACROSS = 32  # default cell = domain width / 32: 0.625 m on the benchmark (its scoring cell, 1/4 sensor spacing)
MAX_CELLS = 200_000  # a Dijkstra inversion on more cells than this would run for hours on a laptop

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """A PyGIMLi inversion sampled on `pinnprov.pinn.scoring.grid_for(data)` (rows = depth, top row shallowest)."""

    velocity_grid: np.ndarray  # m/s, shape (rows, cols); (44, 32) on the benchmark
    grid_x: np.ndarray  # cell-centre x (m), same shape
    grid_z: np.ndarray  # cell-centre depth (m), same shape
    r2: float | None  # against the exact model: only for the benchmark data set, None for user data
    rmse_m_s: float | None
    data_rms_s: float  # RMS of (modelled - observed) traveltimes
    chi2: float  # error-weighted misfit; 1 means "fits to the noise level"
    iterations: int
    seconds: float  # wall time of the PyGIMLi inversion (mesh, Dijkstra, Gauss-Newton)
    parameters: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars (no arrays): what `pinnprov baseline` writes to result.json."""
        return {
            "r2": self.r2,
            "rmse_m_s": self.rmse_m_s,
            "data_rms_s": self.data_rms_s,
            "chi2": self.chi2,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "grid_shape": list(self.velocity_grid.shape),
            "parameters": dict(self.parameters),
        }


def invert(
    data: TraveltimeData,
    *,
    lam: float = DEFAULT_LAM,
    use_gradient: bool = False,
    cell_size_m: float | None = None,
    sec_nodes: int = DEFAULT_SEC_NODES,
    z_weight: float = DEFAULT_Z_WEIGHT,
    max_iter: int = DEFAULT_MAX_ITER,
    relative_error: float = NOISE_RELATIVE,
    absolute_error_s: float = NOISE_ABSOLUTE_S,
    verbose: bool = False,
) -> BaselineResult:
    """Invert `data` with PyGIMLi's TravelTimeManager and sample the velocity on the PINN's grid (`grid_for`).

    The data error given to PyGIMLi is the benchmark's noise model, sqrt((relative t)^2 + absolute^2), so chi2 = 1
    means "fits to the noise". Raises ValueError (one line, naming the argument) on bad settings or data.
    """
    cell = _check_settings(data, lam, cell_size_m, sec_nodes, z_weight, max_iter, relative_error, absolute_error_s)
    pg, manager_type = _import_pygimli()
    started = time.perf_counter()
    with _pygimli_logging(pg, verbose):
        container = _data_container(pg, data, relative_error, absolute_error_s)
        mesh = _regular_mesh(pg, data.domain, cell)
        manager = manager_type()
        velocity = manager.invert(
            container,
            mesh=mesh,
            secNodes=sec_nodes,
            lam=lam,
            zWeight=z_weight,
            useGradient=use_gradient,
            maxIter=max_iter,
            verbose=verbose,
        )
        chi2 = float(manager.inv.chi2())
        response = np.asarray(manager.inv.response, dtype=np.float64)
        iterations = max(0, len(getattr(manager.inv, "chi2History", [None])) - 1)
        para_domain = manager.paraDomain
    seconds = time.perf_counter() - started

    grid_x, grid_z = grid_for(data)
    grid = _sample_cells(pg, para_domain, np.asarray(velocity, dtype=np.float64), grid_x, grid_z)
    score_r2 = score_rmse = None
    exact = true_model(data)
    if exact is not None:
        truth = exact(grid_x, grid_z)
        score_r2, score_rmse = r2(predicted=grid, true=truth), rmse(predicted=grid, true=truth)
    parameters: dict[str, Any] = {
        "method": "pygimli.physics.TravelTimeManager",
        "pygimli_version": _pygimli_version(),
        "lam": lam,
        "use_gradient": use_gradient,
        "cell_size_m": cell,
        "mesh_cells": int(mesh.cellCount()),
        "sec_nodes": sec_nodes,
        "z_weight": z_weight,
        "max_iter": max_iter,
        "relative_error": relative_error,
        "absolute_error_s": absolute_error_s,
        "data_name": data.name,
        "data_sha256": data.sha256(),
        "picks": data.picks,
    }
    _log.info("PyGIMLi baseline: chi2 %.3g after %d iterations in %.1f s", chi2, iterations, seconds)
    return BaselineResult(
        velocity_grid=grid,
        grid_x=grid_x,
        grid_z=grid_z,
        r2=score_r2,
        rmse_m_s=score_rmse,
        data_rms_s=traveltime_rms(predicted_s=response, observed_s=data.traveltimes),
        chi2=chi2,
        iterations=iterations,
        seconds=seconds,
        parameters=parameters,
    )


def _check_settings(
    data: TraveltimeData,
    lam: float,
    cell_size_m: float | None,
    sec_nodes: int,
    z_weight: float,
    max_iter: int,
    relative_error: float,
    absolute_error_s: float,
) -> float:
    """Validate everything before PyGIMLi sees it (its own errors are C++ aborts or pages of log); return the cell."""
    for name, value in (("lam", lam), ("z_weight", z_weight)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: must be a positive number, got {value!r}")
    if not (isinstance(sec_nodes, int) and 0 <= sec_nodes <= 10):
        raise ValueError(f"sec_nodes: must be an integer in [0, 10], got {sec_nodes!r}")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter: must be a positive integer, got {max_iter!r}")
    if (
        not (math.isfinite(relative_error) and math.isfinite(absolute_error_s))
        or min(relative_error, absolute_error_s) < 0
    ):
        raise ValueError("relative_error/absolute_error_s: must be finite and >= 0")
    if relative_error == 0 and absolute_error_s == 0:
        raise ValueError("relative_error/absolute_error_s: at least one must be > 0 (chi2 divides by the error)")
    domain = data.domain
    cell = domain.width / CELLS_ACROSS if cell_size_m is None else float(cell_size_m)
    if not (math.isfinite(cell) and 0 < cell <= min(domain.width, domain.depth) / 2):
        raise ValueError(f"cell_size_m: must be in (0, {min(domain.width, domain.depth) / 2:g}] m, got {cell_size_m!r}")
    cells = math.ceil(domain.width / cell - 1e-9) * math.ceil(domain.depth / cell - 1e-9)
    if cells > MAX_CELLS:
        raise ValueError(f"cell_size_m: {cell:g} m gives {cells} cells (> {MAX_CELLS}); choose a larger cell")
    times = np.asarray(data.traveltimes, dtype=np.float64)
    if data.picks == 0:
        raise ValueError(f"{data.name}: no picks to invert")
    if not (np.all(np.isfinite(times)) and np.all(times > 0)):
        raise ValueError(f"{data.name}: traveltimes must be finite and > 0 s")
    for role, points in (("source", data.sources), ("receiver", data.receivers)):
        outside = ~domain.contains(points)
        if outside.any():
            x, z = points[np.flatnonzero(outside)[0]]
            raise ValueError(f"{data.name}: {role} at (x={x:g}, z={z:g}) lies outside the domain")
    if np.any(np.all(data.sources == data.receivers, axis=1)):
        raise ValueError(f"{data.name}: a pick has its source and receiver at the same point")
    return cell


def _import_pygimli() -> tuple[ModuleType, type]:
    """Import PyGIMLi lazily (it is heavy and optional) and undo its import-time side effect on logging.

    PyGIMLi attaches a StreamHandler to the *root* logger when imported, which would print every later log record
    of the process twice once logging is configured; we detach exactly that handler. (PyGIMLi also runs `git` to
    compute `pygimli.__version__`; we never read that attribute and use the installed distribution's version.)
    """
    try:
        import pygimli as pg
        from pygimli.core import logger as pg_logger
        from pygimli.physics import TravelTimeManager
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ValueError(f"the PyGIMLi baseline needs pygimli (pip install 'pinnprov[cpu]'): {error}") from None
    handler = getattr(pg_logger, "streamHandler", None)
    if handler is not None:
        logging.getLogger().removeHandler(handler)
    return pg, TravelTimeManager


def _pygimli_version() -> str:
    try:
        return metadata.version("pygimli")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout of pygimli
        return "unknown"


@contextlib.contextmanager
def _pygimli_logging(pg: ModuleType, verbose: bool) -> Iterator[None]:
    """PyGIMLi logs every step at INFO and `print`s some lines unconditionally: show them only when asked.

    When quiet, its Python-level stdout is captured (sys.stdout is swapped for the duration, so keep other threads'
    printing out of this window) and forwarded to the "pyGIMLi" logger at DEBUG; levels are restored afterwards.
    """
    pg_log = logging.getLogger("pyGIMLi")
    previous = pg_log.level
    pg_log.setLevel(logging.INFO if verbose else logging.WARNING)
    captured = io.StringIO()
    try:
        if verbose:
            yield
        else:
            with contextlib.redirect_stdout(captured):
                yield
    finally:
        pg_log.setLevel(previous)
        if captured.getvalue().strip():
            pg_log.debug("PyGIMLi printed: %s", captured.getvalue().strip())


def _data_container(pg: ModuleType, data: TraveltimeData, relative_error: float, absolute_error_s: float) -> Any:
    """Sensors (unique source/receiver points, y = -z), 's'/'g' indices, 't' (s) and absolute 'err' (s)."""
    points, index = np.unique(np.vstack([data.sources, data.receivers]), axis=0, return_inverse=True)
    index = np.asarray(index).ravel()
    container = pg.DataContainer()
    for x, z in points:
        container.createSensor([float(x), -float(z)])
    n = data.picks
    container.resize(n)
    container.registerSensorIndex("s")
    container.registerSensorIndex("g")
    container["s"] = index[:n].astype(np.float64)
    container["g"] = index[n:].astype(np.float64)
    times = np.asarray(data.traveltimes, dtype=np.float64)
    container["t"] = times
    container["err"] = np.hypot(relative_error * times, absolute_error_s)
    container["valid"] = np.ones(n)
    return container


def _grid_lines(low: float, high: float, cell: float) -> np.ndarray:
    """Node coordinates every `cell` from `low`, closing with a thinner last cell if the extent is not a multiple."""
    count = int(math.floor((high - low) / cell + 1e-9))
    lines = low + cell * np.arange(count + 1)
    if high - lines[-1] > 1e-6 * cell:
        lines = np.append(lines, high)
    return lines


def _regular_mesh(pg: ModuleType, domain: Domain, cell: float) -> Any:
    """Quadrilateral grid of the whole domain in PyGIMLi coordinates (y = -depth, ascending)."""
    x_lines = _grid_lines(domain.x_min, domain.x_max, cell)
    y_lines = np.sort(-_grid_lines(domain.z_min, domain.z_max, cell))
    return pg.meshtools.createMesh2D(x_lines, y_lines)


def _sample_cells(pg: ModuleType, mesh: Any, values: np.ndarray, grid_x: np.ndarray, grid_z: np.ndarray) -> np.ndarray:
    """Piecewise-constant lookup: each display point takes the value of the inversion cell containing it."""
    if len(values) != mesh.cellCount():
        raise RuntimeError(f"PyGIMLi returned {len(values)} values for {mesh.cellCount()} cells")
    ids = np.empty(grid_x.size, dtype=np.int64)
    for k, (x, z) in enumerate(zip(grid_x.ravel(), grid_z.ravel(), strict=True)):
        found = mesh.findCell(pg.Pos(float(x), -float(z)))
        if found is None:
            raise RuntimeError(f"display point (x={x:g}, z={z:g}) is outside the inversion mesh")
        ids[k] = found.id()
    return values[ids].reshape(grid_x.shape)
