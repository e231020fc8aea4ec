"""What a run produces, as observer events: files (ArtifactWritten) and velocity-model snapshots (ModelSnapshot).

Kept out of the training loop so the trainer, `pinnprov train`'s output writer, the baseline and the run API all
describe files the same way (hash, size, media type from pinnprov/core/artifacts.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pinnprov.core.artifacts import file_uri, media_type, sha256_file
from pinnprov.pinn.observer import ArtifactWritten, ModelSnapshot

DEFAULT_SNAPSHOT_EVERY = 1000
"""Epochs between model snapshots: 5.6 KB each on the benchmark grid, a few dozen per run (bench/snapshots.py)."""


def artifact_event(run_id: str, path: Path | str, role: str, epoch: int, at: float | None = None) -> ArtifactWritten:
    """The event for a finished file: hashed now (the file must be complete and closed)."""
    path = Path(path).resolve()
    return ArtifactWritten(run_id=run_id, path=str(path), role=role, sha256=sha256_file(path),
                           size_bytes=path.stat().st_size, media_type=media_type(path), epoch=int(epoch),
                           at=time.time() if at is None else at, uri=file_uri(path))


def snapshot_event(run_id: str, epoch: int, grid_x: np.ndarray, grid_z: np.ndarray, values: Any,
                   kind: str = "pinn") -> ModelSnapshot:
    """A velocity model on a regular grid (rows = depth) as compact float32 little-endian bytes."""
    grid = np.asarray(values, dtype="<f4")
    nz, nx = grid.shape
    return ModelSnapshot(run_id=run_id, epoch=int(epoch), at=time.time(), nx=int(nx), nz=int(nz),
                         x_min=float(grid_x[0, 0]), x_max=float(grid_x[0, -1]), z_min=float(grid_z[0, 0]),
                         z_max=float(grid_z[-1, 0]), values=grid.tobytes(order="C"), kind=kind)


def snapshot_values(snapshot: ModelSnapshot) -> np.ndarray:
    """The (nz, nx) float32 grid of a snapshot."""
    return np.frombuffer(snapshot.values, dtype="<f4").reshape(snapshot.nz, snapshot.nx)
