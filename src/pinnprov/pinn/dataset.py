"""Traveltime data: source/receiver pairs with first-arrival times, and the rectangular domain they live in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pinnprov.pinn.observer import DatasetIdentity


@dataclass(frozen=True)
class Domain:
    """Axis-aligned rectangle in metres; z is depth, growing downwards."""

    x_min: float
    x_max: float
    z_min: float
    z_max: float

    def __post_init__(self) -> None:
        if not (self.x_max > self.x_min and self.z_max > self.z_min):
            raise ValueError(f"domain: empty extent x=[{self.x_min}, {self.x_max}] z=[{self.z_min}, {self.z_max}]")

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def depth(self) -> float:
        return self.z_max - self.z_min

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of (n, 2) points (x, z) inside the closed rectangle."""
        x, z = points[:, 0], points[:, 1]
        return (x >= self.x_min) & (x <= self.x_max) & (z >= self.z_min) & (z <= self.z_max)


@dataclass(frozen=True)
class TraveltimeData:
    """Picks: sources (n, 2) and receivers (n, 2) as (x, z) in metres, traveltimes (n,) in seconds."""

    name: str
    domain: Domain
    sources: np.ndarray
    receivers: np.ndarray
    traveltimes: np.ndarray
    origin: str = "user"  # "benchmark" only for pinn.benchmark's data set; a file path for user data
    noise_rms_s: float | None = None  # known noise level (synthetic data), for the discrepancy principle

    def __post_init__(self) -> None:
        n = len(self.traveltimes)
        if self.sources.shape != (n, 2) or self.receivers.shape != (n, 2):
            raise ValueError(f"{self.name}: sources and receivers must be ({n}, 2) arrays")

    @property
    def picks(self) -> int:
        return len(self.traveltimes)

    def sha256(self) -> str:
        """Content hash of the picks and domain: the data set's identity in provenance."""
        digest = hashlib.sha256()
        bounds = [self.domain.x_min, self.domain.x_max, self.domain.z_min, self.domain.z_max]
        digest.update(np.asarray(bounds).tobytes())
        for array in (self.sources, self.receivers, self.traveltimes):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def identity(self) -> DatasetIdentity:
        return DatasetIdentity(name=self.name, sha256=self.sha256(), picks=self.picks, source=self.origin)
