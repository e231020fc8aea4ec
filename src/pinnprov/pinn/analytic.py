"""Media with closed-form traveltimes, to verify the FEE residual and the forward solver.

Constant velocity gradient v(z) = v0 + g z: t = arccosh(1 + g^2 r^2 / (2 v(zs) v(zr))) / g, with r the
source-receiver distance (Slotnick 1959; Fomel, Luo & Zhao 2009, Eq. 12). Homogeneous: t = r / v0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConstantGradient:
    """v(x, z) = v0 + g (z - z0); g = 0 is the homogeneous medium."""

    v0: float
    gradient: float = 0.0
    z0: float = 0.0

    def velocity(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        x, z = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(z, np.float64))
        return self.v0 + self.gradient * (z - self.z0)

    def traveltime(self, sources: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        """Seconds for pairs (n, 2), (n, 2) as (x, z) in metres."""
        sources, receivers = np.asarray(sources, np.float64), np.asarray(receivers, np.float64)
        r: np.ndarray = np.linalg.norm(receivers - sources, axis=1)
        if self.gradient == 0:
            return r / self.v0
        vs = self.velocity(sources[:, 0], sources[:, 1])
        vr = self.velocity(receivers[:, 0], receivers[:, 1])
        seconds: np.ndarray = np.arccosh(1.0 + self.gradient**2 * r**2 / (2.0 * vs * vr)) / abs(self.gradient)
        return seconds

    def tau(self, sources: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        """The traveltime factor t / |xr - xs| (s/m); 1 / v(xs) at the source itself."""
        r = np.linalg.norm(np.asarray(receivers) - np.asarray(sources), axis=1)
        at_source = 1.0 / self.velocity(np.asarray(sources)[:, 0], np.asarray(sources)[:, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(r > 0, self.traveltime(sources, receivers) / np.where(r > 0, r, 1.0), at_source)
