"""End-of-run evaluation: the velocity grid, its R^2/RMSE when the true model is known, and data misfits.

The exact model is used here only, after training, to score: never to choose epochs or parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pinnprov.pinn import benchmark, model_suite
from pinnprov.pinn.dataset import Domain, TraveltimeData
from pinnprov.pinn.metrics import r2, rmse

if TYPE_CHECKING:
    from pinnprov.pinn.problem import Problem


@dataclass
class Scored:
    grid_x: np.ndarray
    grid_z: np.ndarray
    grid_v: np.ndarray
    r2: float | None
    rmse_m_s: float | None
    data_rms_s: float
    holdout_rms_s: float | None


def is_benchmark(data: TraveltimeData) -> bool:
    return data.origin == "benchmark" and data.domain == benchmark.DOMAIN


def true_model(data: TraveltimeData) -> model_suite.VelocityField | None:
    """The exact velocity of a synthetic data set (the benchmark or a suite case), None for anyone else's picks."""
    if is_benchmark(data):
        return benchmark.true_velocity
    suite_case = model_suite.suite_case_of(data)
    if suite_case is not None and data.domain == suite_case.domain:
        return suite_case.true_velocity
    return None


def grid_for(data: TraveltimeData, cells: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The 0.625 m scoring grid for synthetic data, else cell centres over a domain (`cells` on the longer side)."""
    if true_model(data) is not None:
        return score_cells(data.domain)
    return cell_centres(data.domain, cells)


def score_cells(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the whole 0.625 m cells from the domain's top-left corner (on the benchmark: its 44 x 32 grid)."""
    size = benchmark.SCORE_CELL_M
    nx, nz = int(domain.width / size + 1e-9), int(domain.depth / size + 1e-9)
    return np.meshgrid(domain.x_min + (np.arange(nx) + 0.5) * size, domain.z_min + (np.arange(nz) + 0.5) * size)


def cell_centres(domain: Domain, cells: int) -> tuple[np.ndarray, np.ndarray]:
    size = max(domain.width, domain.depth) / cells
    nx, nz = max(1, round(domain.width / size)), max(1, round(domain.depth / size))
    xc = domain.x_min + (np.arange(nx) + 0.5) * domain.width / nx
    zc = domain.z_min + (np.arange(nz) + 0.5) * domain.depth / nz
    return np.meshgrid(xc, zc)


def score(problem: Problem, data: TraveltimeData) -> Scored:
    import tensorflow as tf

    grid_x, grid_z = grid_for(data)
    grid_v = problem.velocity_m_s(grid_x, grid_z)
    r2_value = rmse_value = None
    exact = true_model(data)
    if exact is not None:
        truth = exact(grid_x, grid_z)
        r2_value, rmse_value = r2(grid_v, truth), rmse(grid_v, truth)
    scaling = problem.scaling
    times = tf.constant((data.traveltimes / scaling.time_s).astype(np.float32))
    all_rms = problem.loss.data_rms_s(tf.constant(scaling.points(data.sources)),
                                      tf.constant(scaling.points(data.receivers)), times)
    return Scored(grid_x, grid_z, grid_v, r2_value, rmse_value, all_rms, problem.holdout_rms_s())
