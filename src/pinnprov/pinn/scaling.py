"""Nondimensionalisation: networks see O(1) inputs and produce O(1) outputs.

Coordinates X = (x - centre) / L with L half the longer side of the domain, so the domain maps into [-1, 1].
Velocities v = v0 * v_hat with v0 the median apparent velocity of the picks (distance / time), times
t = T * t_hat with T = L / v0, and the traveltime factor tau (a slowness) = tau_hat / v0. The eikonal
equation keeps its form in these units: |grad_X phi_hat| = 1 / v_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinnprov.pinn.dataset import Domain, TraveltimeData


@dataclass(frozen=True)
class Scaling:
    centre_x: float
    centre_z: float
    length_m: float  # L
    velocity_m_s: float  # v0

    @property
    def time_s(self) -> float:  # T
        return self.length_m / self.velocity_m_s

    @classmethod
    def for_domain(cls, domain: Domain, velocity_m_s: float) -> Scaling:
        return cls(
            centre_x=0.5 * (domain.x_min + domain.x_max),
            centre_z=0.5 * (domain.z_min + domain.z_max),
            length_m=0.5 * max(domain.width, domain.depth),
            velocity_m_s=float(velocity_m_s),
        )

    @classmethod
    def for_data(cls, data: TraveltimeData) -> Scaling:
        return cls.for_domain(data.domain, float(np.median(apparent_velocities(data))))

    def points(self, xz: np.ndarray) -> np.ndarray:
        """(n, 2) metres -> (n, 2) nondimensional float32."""
        xz = np.asarray(xz, dtype=np.float64)
        out = np.empty_like(xz)
        out[:, 0] = (xz[:, 0] - self.centre_x) / self.length_m
        out[:, 1] = (xz[:, 1] - self.centre_z) / self.length_m
        return out.astype(np.float32)

    def domain_box(self, domain: Domain) -> tuple[float, float, float, float]:
        """(x_min, x_max, z_min, z_max) of the domain in nondimensional units."""
        return (
            (domain.x_min - self.centre_x) / self.length_m,
            (domain.x_max - self.centre_x) / self.length_m,
            (domain.z_min - self.centre_z) / self.length_m,
            (domain.z_max - self.centre_z) / self.length_m,
        )


def apparent_velocities(data: TraveltimeData) -> np.ndarray:
    """Straight-ray distance over traveltime per pick (m/s): bounds the average velocity along each ray."""
    velocities: np.ndarray = np.linalg.norm(data.receivers - data.sources, axis=1) / data.traveltimes
    return velocities


def velocity_bounds(data: TraveltimeData, lower: float = 0.0, upper: float = 0.0) -> tuple[float, float]:
    """Output range of the velocity network in m/s; 0 means derive it from the apparent velocities.

    Why this range: a ray's average velocity lies between the model's extremes, so the true model's range
    contains the apparent velocities; a factor of 2 either side leaves room for inclusions that rays only
    partly cross while keeping the sigmoid output away from implausible values.
    """
    apparent = apparent_velocities(data)
    low = lower or 0.5 * float(apparent.min())
    high = upper or 2.0 * float(apparent.max())
    if not high > low:
        raise ValueError(f"velocity bounds: max {high} must exceed min {low}")
    return low, high
