"""The paper's crosshole benchmark (DESIGN.md): geometry, exact velocity model and synthetic traveltimes.

Traveltimes come from eikonalfm's second-order *factored* fast marching at h = 0.0625 m, so the source
singularity is resolved; noise is 0.1 % relative plus 10 µs absolute, combined in quadrature
(sigma = sqrt((0.001 t)^2 + (10 µs)^2)), drawn with seed 1337. The exact model is used only to score.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pinnprov.pinn.dataset import Domain, TraveltimeData

DOMAIN = Domain(x_min=0.0, x_max=20.0, z_min=0.0, z_max=28.0)
BACKGROUND_M_S = 2000.0
BOREHOLE_DEPTHS_M = tuple(2.5 * k for k in range(1, 11))  # 2.5, 5.0, ..., 25.0
SOURCE_X_M = 0.0
RECEIVER_X_M = 20.0
SOLVER_SPACING_M = 0.0625
NOISE_RELATIVE = 1e-3
NOISE_ABSOLUTE_S = 1e-5
NOISE_SEED = 1337
SCORE_CELL_M = 0.625
SCORE_CELLS_X = 32
SCORE_CELLS_Z = 44


@dataclass(frozen=True)
class Disc:
    x: float
    z: float
    radius: float
    velocity_m_s: float


INCLUSIONS = (
    Disc(x=7.0, z=10.0, radius=3.0, velocity_m_s=4000.0),  # fast, top-left
    Disc(x=12.0, z=18.0, radius=4.0, velocity_m_s=1500.0),  # slow, bottom-right
)


def true_velocity(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Exact velocity (m/s) at points x, z (any broadcastable shapes)."""
    x, z = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64))
    velocity = np.full(x.shape, BACKGROUND_M_S)
    for disc in INCLUSIONS:
        velocity[(x - disc.x) ** 2 + (z - disc.z) ** 2 <= disc.radius**2] = disc.velocity_m_s
    return velocity


def score_grid() -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (x, z) of the 0.625 m scoring grid, shape (44, 32) each (rows = depth)."""
    xc = (np.arange(SCORE_CELLS_X) + 0.5) * SCORE_CELL_M + DOMAIN.x_min
    zc = (np.arange(SCORE_CELLS_Z) + 0.5) * SCORE_CELL_M + DOMAIN.z_min
    return np.meshgrid(xc, zc)


def acquisition() -> tuple[np.ndarray, np.ndarray]:
    """All 100 source/receiver pairs (sources at x=0, receivers at x=20), each (100, 2) as (x, z)."""
    depths = np.asarray(BOREHOLE_DEPTHS_M)
    src_z, rec_z = np.meshgrid(depths, depths, indexing="ij")
    sources = np.column_stack([np.full(src_z.size, SOURCE_X_M), src_z.ravel()])
    receivers = np.column_stack([np.full(rec_z.size, RECEIVER_X_M), rec_z.ravel()])
    return sources, receivers


def solve_traveltimes(
    velocity_grid: np.ndarray, spacing_m: float, sources: np.ndarray, receivers: np.ndarray, domain: Domain
) -> np.ndarray:
    """Exact-as-possible traveltimes by second-order factored fast marching on a regular grid.

    velocity_grid is indexed [ix, iz] with node (ix, iz) at (x_min + ix h, z_min + iz h); sources and
    receivers must lie on nodes. One solve per distinct source.
    """
    import eikonalfm  # imported here: only data generation and the reference solver need it

    def node(point: np.ndarray) -> tuple[int, int]:
        index = np.rint([(point[0] - domain.x_min) / spacing_m, (point[1] - domain.z_min) / spacing_m]).astype(int)
        return int(index[0]), int(index[1])

    nx, nz = velocity_grid.shape
    grid_x = domain.x_min + spacing_m * np.arange(nx)[:, None]
    grid_z = domain.z_min + spacing_m * np.arange(nz)[None, :]
    times = np.empty(len(sources))
    for source in np.unique(sources, axis=0):
        ix, iz = node(source)
        tau1 = eikonalfm.factored_fast_marching(velocity_grid, (ix, iz), (spacing_m, spacing_m), 2)
        tau0 = np.hypot(grid_x - source[0], grid_z - source[1])
        field = tau0 * tau1
        for k in np.flatnonzero(np.all(sources == source, axis=1)):
            times[k] = field[node(receivers[k])]
    return times


def noise_sigma(traveltimes_s: np.ndarray) -> np.ndarray:
    """Standard deviation of the synthetic noise per pick (s)."""
    return np.hypot(NOISE_RELATIVE * traveltimes_s, NOISE_ABSOLUTE_S)


def expected_noise_rms(observed_s: np.ndarray, relative: float = NOISE_RELATIVE,
                       absolute_s: float = NOISE_ABSOLUTE_S) -> float:
    """The noise level a user states from the noise model alone: sqrt(mean(sigma_i^2)) over the observed picks.

    What the discrepancy principle should aim at: the realised noise of a synthetic data set is known only to
    its generator, while the model's sigma (here 0.1 % + 10 µs) is what a pick uncertainty gives in the field.
    """
    sigma = np.hypot(relative * np.asarray(observed_s, np.float64), absolute_s)
    return float(np.sqrt(np.mean(sigma**2)))


@lru_cache(maxsize=1)
def _clean_traveltimes() -> np.ndarray:
    nx = int(round(DOMAIN.width / SOLVER_SPACING_M)) + 1
    nz = int(round(DOMAIN.depth / SOLVER_SPACING_M)) + 1
    grid_x, grid_z = np.meshgrid(
        DOMAIN.x_min + SOLVER_SPACING_M * np.arange(nx), DOMAIN.z_min + SOLVER_SPACING_M * np.arange(nz), indexing="ij"
    )
    sources, receivers = acquisition()
    return solve_traveltimes(true_velocity(grid_x, grid_z), SOLVER_SPACING_M, sources, receivers, DOMAIN)


def crosshole_benchmark() -> TraveltimeData:
    """The benchmark data set: 100 noisy first-arrival traveltimes (deterministic)."""
    sources, receivers = acquisition()
    clean = _clean_traveltimes()
    noise = np.random.default_rng(NOISE_SEED).normal(0.0, 1.0, clean.shape) * noise_sigma(clean)
    return TraveltimeData(
        name="crosshole-benchmark",
        domain=DOMAIN,
        sources=sources,
        receivers=receivers,
        traveltimes=clean + noise,
        origin="benchmark",
        noise_rms_s=expected_noise_rms(clean + noise),
    )


def clean_traveltimes() -> np.ndarray:
    """Noise-free benchmark traveltimes (s), for tests and scoring only."""
    return _clean_traveltimes().copy()
