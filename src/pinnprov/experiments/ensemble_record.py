"""The provenance of an ensemble: one aggregating activity in the store and a `member_of` relation per member.

Why a run row: the ensemble is an activity with its own start, end, status, inputs (the members' shared
hyperparameters, the data set) and results (R² of the mean, the spread), so it takes the shape every query
already reads: `pinnprov runs` lists it, `pinnprov query summary` shows its scores, `pinnprov export-prov RUN`
exports it. Its service is `pinnprov.store.run_relations.ENSEMBLE_SERVICE`, which the PROV views type as
pinnprov:Ensemble, and it has no epochs (it trains nothing). Which runs are its members only this driver knows, so
it writes them as `run_relation` rows of kind `member_of` (PROV wasInformedBy(ensemble, member)), through the
store as the sweep driver writes its retries. The rows are written through the collector's own sink, so they are
exactly those a trainer's telemetry would produce.

Its velocity models are `model_snapshot` rows of its run (`add_models`): the per-cell mean, std and the 90 %
interval's bounds p05 and p95 (kinds mean, std, p05, p95), and the exact and PyGIMLi models when there are any,
encoded as the trainer's snapshots (`pinnprov.pinn.products.snapshot_event`, then the collector's
`snapshot_record`), so the UI's model view, `export-prov` and lineage read them as any run's snapshots.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy import ndarray

# Members differ in these (or the driver sets them per member): not a hyperparameter of the ensemble.
PER_MEMBER = ("seed", "run_name", "experiment", "threads")


@dataclass
class EnsembleRecord:
    """What the store learns about one ensemble: written at its start (running) and at its end."""

    store: str
    run_name: str
    experiment: str
    hyperparameters: Mapping[str, Any]
    dataset: Any  # pinn.dataset.DatasetIdentity
    run_id: str = field(default_factory=lambda: secrets.token_hex(16))
    started_at: float = field(default_factory=time.time)
    agent: str = field(default_factory=lambda: f"ensemble:{getpass.getuser()}")

    def start(self) -> None:
        """The ensemble's run row, status running, so `pinnprov runs` shows it while its members train."""
        from pinnprov.core.vocabulary import PROCESS_OWNER, PROCESS_PID
        from pinnprov.store.records import RunStartRecord
        from pinnprov.store.run_relations import ENSEMBLE_SERVICE

        self._export([
            RunStartRecord(
                run_id=self.run_id, record_id=secrets.token_hex(8), run_name=self.run_name,
                experiment=self.experiment, started_at=self.started_at, hyperparameters=dict(self.hyperparameters),
                dataset_name=self.dataset.name, dataset_sha256=self.dataset.sha256, dataset_picks=self.dataset.picks,
                dataset_source=self.dataset.source, host=socket.gethostname(), service=ENSEMBLE_SERVICE,
                resource={PROCESS_PID: os.getpid(), PROCESS_OWNER: getpass.getuser()},
            )
        ])

    def add_members(self, member_run_ids: Mapping[str, int]) -> None:
        """`member_of` from every member run (run id -> seed) to the ensemble; idempotent."""
        from pinnprov.store.access import open_store
        from pinnprov.store.run_relations import MEMBER_OF, record_relation

        with open_store(self.store, read_only=False) as store:
            for run_id, seed in member_run_ids.items():
                record_relation(store, run_id=run_id, related_run_id=self.run_id, relation=MEMBER_OF,
                                agent=self.agent, reason=f"seed {seed}")

    def add_models(self, grid_x: ndarray, grid_z: ndarray, grids: Mapping[str, ndarray | None],
                   epoch: int = 0) -> None:
        """The ensemble's models as `model_snapshot` rows of its run, one per kind: mean, std, p05, p95 (the 90 %
        interval's bounds), exact and pygimli (a kind given as None is left out). Each (nz, nx) grid lies on
        `grid_x`, `grid_z` (rows = depth), as the trainer's snapshots. Idempotent: a snapshot's id is derived from
        the run, kind and epoch, and a row already stored is kept."""
        import numpy as np

        from pinnprov.collector.translate_products import snapshot_record
        from pinnprov.pinn.products import snapshot_event
        from pinnprov.store.snapshots import ENSEMBLE_MODEL_KINDS

        unknown = sorted(set(grids) - set(ENSEMBLE_MODEL_KINDS))
        if unknown:
            raise ValueError(f"ensemble models: unknown kind(s) {unknown}; "
                             f"expected some of {list(ENSEMBLE_MODEL_KINDS)}")
        records = []
        for kind in ENSEMBLE_MODEL_KINDS:
            values = grids.get(kind)
            if values is None:
                continue
            if np.shape(values) != np.shape(grid_x) or np.shape(grid_z) != np.shape(grid_x):
                raise ValueError(f"ensemble model {kind!r}: grid {np.shape(values)} is not on the scoring grid "
                                 f"{np.shape(grid_x)}")
            event = snapshot_event(self.run_id, epoch, grid_x, grid_z, values, kind=kind)
            records.append(snapshot_record(
                run_id=self.run_id, record_id=snapshot_id(self.run_id, kind, event.epoch), epoch=event.epoch,
                at=event.at, kind=kind, nx=event.nx, nz=event.nz, x_min=event.x_min, x_max=event.x_max,
                z_min=event.z_min, z_max=event.z_max, raw=event.values,
            ))
        if records:
            self._export(records)

    def end(self, status: str, summary: Mapping[str, float], error: str = "") -> None:
        from pinnprov.store.records import RunEndRecord

        self._export([
            RunEndRecord(
                run_id=self.run_id, record_id=secrets.token_hex(8), ended_at=time.time(), status=status, epochs=0,
                error=error, summary=dict(summary), run_name=self.run_name, experiment=self.experiment,
                started_at=self.started_at,
            )
        ])

    def _export(self, records: list[Any]) -> None:
        from pinnprov.experiments.storeview import export_records

        export_records(self.store, records, f"ensemble {self.run_name}")


def snapshot_id(run_id: str, kind: str, epoch: int) -> str:
    """The ensemble model's snapshot id (16 hex digits, as a span id): the same for the same run, kind and epoch."""
    return hashlib.sha256(f"ensemble-model/{run_id}/{kind}/{epoch}".encode()).hexdigest()[:16]


def ensemble_hyperparameters(member_hyperparameters: Mapping[str, Any], seeds: list[int]) -> dict[str, Any]:
    """The ensemble's inputs: what all members share, its size and the members' seeds."""
    shared = {name: value for name, value in member_hyperparameters.items() if name not in PER_MEMBER}
    return {**shared, "ensemble.size": len(seeds), "ensemble.seeds": ",".join(str(seed) for seed in seeds)}
