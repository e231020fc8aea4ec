"""What a run produces, as observer events: files (ArtifactWritten) and velocity-model snapshots (ModelSnapshot),
and `RunProducts`, the trainer's side of them: when to checkpoint and snapshot, the final networks.

Kept out of the training loop so the trainer, `pinnprov train`'s output writer, the baseline and the run API all
describe files the same way (hash, size, media type from pinnprov/core/artifacts.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pinnprov.core.artifacts import ROLE_CHECKPOINT, file_uri, media_type, sha256_file
from pinnprov.pinn import checkpoints as ckpt
from pinnprov.pinn.observer import ArtifactWritten, ModelSnapshot, ObserverFanout

if TYPE_CHECKING:
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.dataset import TraveltimeData
    from pinnprov.pinn.events import EventReplay
    from pinnprov.pinn.problem import Problem
    from pinnprov.pinn.stopping import StoppingRule

log = logging.getLogger(__name__)

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


class RunProducts:
    """The trainer's products during a run: checkpoints, model snapshots and the final networks, each reported."""

    def __init__(self, fanout: ObserverFanout, run_id: str, config: TrainConfig, data: TraveltimeData,
                 problem: Problem, started: float, snapshot_every: int, policy: ckpt.CheckpointPolicy | None,
                 epochs: int) -> None:
        from pinnprov.pinn.scoring import grid_for

        self.fanout, self.run_id, self.config, self.data, self.problem = fanout, run_id, config, data, problem
        self.started = started
        self.every = snapshot_every if fanout.wants_snapshots else 0
        self.policy = policy if policy is not None and policy.enabled else None
        self.clock = ckpt.CheckpointClock(self.policy, epochs) if self.policy is not None else None
        self.grid_x, self.grid_z = grid_for(data)
        self.written: list[tuple[str, Path]] = []
        self._last_snapshot = epochs
        self._last_values = b""
        self._last_checkpoint = -1

    def exact_model(self) -> None:
        """The exact model of a synthetic data set, sent once for display beside the PINN's (never to select)."""
        from pinnprov.pinn.scoring import true_model

        exact = true_model(self.data)
        if self.every and exact is not None:
            self.fanout.on_model_snapshot(snapshot_event(self.run_id, 0, self.grid_x, self.grid_z,
                                                         exact(self.grid_x, self.grid_z), kind="exact"))

    def snapshot(self, epoch: int, values: np.ndarray | None = None) -> None:
        if not self.every:
            return
        if values is None:
            values = self.problem.velocity_m_s(self.grid_x, self.grid_z)
        event = snapshot_event(self.run_id, epoch, self.grid_x, self.grid_z, values)
        if epoch == self._last_snapshot and event.values == self._last_values:
            return  # the final model is the one just sent (no hold-out selection moved it)
        self.fanout.on_model_snapshot(event)
        self._last_snapshot, self._last_values = epoch, event.values

    def chunk_done(self, replay: EventReplay, rule: StoppingRule, best: list[np.ndarray] | None) -> None:
        if self.every and replay.epochs // self.every > self._last_snapshot // self.every:
            self.snapshot(replay.epochs)
        if self.clock is not None and self.clock.due(replay.epochs):
            self.checkpoint(replay, rule, best)

    def checkpoint(self, replay: EventReplay, rule: StoppingRule, best: list[np.ndarray] | None, *,
                   final: bool = False) -> None:
        if self.policy is None or replay.epochs == self._last_checkpoint or replay.epochs == 0:
            return
        meta = {"run_id": self.run_id, "epochs": replay.epochs, "reported_lr": replay.reported_lr,
                "rule": rule.state(), "seconds": time.time() - self.started,
                "config": dataclasses.asdict(self.config), "dataset_sha256": self.data.identity().sha256,
                "final": final}
        path = ckpt.save(self.policy.directory / ckpt.file_name(replay.epochs), self.problem, meta, best)
        ckpt.prune(self.policy.directory, self.policy.keep)
        self._last_checkpoint = replay.epochs
        if self.clock is not None:
            self.clock.taken(replay.epochs)
        self._report(path, ROLE_CHECKPOINT, replay.epochs)

    def networks(self, directory: Path, epoch: int) -> None:
        from pinnprov.pinn.keras_export import save_networks

        try:
            written = save_networks(self.problem, directory)
        except Exception as error:  # noqa: BLE001 - saving a copy of the networks never fails the run
            log.warning("could not save the networks to %s: %s: %s", directory, type(error).__name__, error)
            return
        for role, path in written:
            self._report(path, role, epoch)

    def _report(self, path: Path, role: str, epoch: int) -> None:
        self.written.append((role, path))
        self.fanout.on_artifact(artifact_event(self.run_id, path, role, epoch))
