"""Forward mode: the PINN solves the FEE for a known medium within 1 % of the analytic traveltimes."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.pinn.analytic import ConstantGradient
from pinnprov.pinn.benchmark import DOMAIN, acquisition
from pinnprov.pinn.forward import ForwardConfig, GridVelocity, solve_forward
from pinnprov.pinn.trainer import configure_threads

configure_threads(1)


@pytest.mark.slow
@pytest.mark.parametrize("medium", [ConstantGradient(2000.0), ConstantGradient(2000.0, 50.0)],
                         ids=["homogeneous", "gradient"])
def test_forward_traveltimes_within_one_percent(medium: ConstantGradient) -> None:
    sources, receivers = acquisition()
    solution = solve_forward(medium.velocity, DOMAIN, np.unique(sources, axis=0), ForwardConfig(epochs=2000))
    predicted = solution.traveltimes(sources, receivers)
    exact = medium.traveltime(sources, receivers)
    assert np.max(np.abs(predicted - exact) / exact) < 0.01
    # and inside the domain, not only at the receiver borehole
    rng = np.random.default_rng(0)
    inside = np.column_stack([rng.uniform(2, 20, 200), rng.uniform(0, 28, 200)])
    shots = sources[rng.integers(0, len(sources), 200)]
    assert np.max(np.abs(solution.traveltimes(shots, inside) - medium.traveltime(shots, inside))
                  / medium.traveltime(shots, inside)) < 0.02


def test_grid_velocity_interpolates_bilinearly() -> None:
    medium = ConstantGradient(2000.0, 50.0)
    x, z = np.meshgrid(np.linspace(0, 20, 5), np.linspace(0, 28, 8))
    grid = GridVelocity(medium.velocity(x, z), DOMAIN)
    points_x, points_z = np.array([0.0, 3.3, 20.0, 11.1]), np.array([0.0, 27.9, 28.0, 13.37])
    np.testing.assert_allclose(grid(points_x, points_z), medium.velocity(points_x, points_z))  # linear in z: exact
    with pytest.raises(ValueError, match="at least 2 x 2"):
        GridVelocity(np.ones(3), DOMAIN)
    with pytest.raises(ValueError, match="> 0"):
        GridVelocity(np.zeros((2, 2)), DOMAIN)
