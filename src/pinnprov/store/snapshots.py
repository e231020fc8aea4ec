"""Reads of the velocity-model snapshots (`model_snapshot`, schema version 6) for the UI and tools.

A snapshot's grid is float32 little-endian, base64 (as it travelled in the telemetry): the UI hands it to the
browser unchanged, which decodes it into a Float32Array, so no number is re-encoded on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinnprov.store.base import Store

ENSEMBLE_KINDS = ("mean", "std", "p05", "p95")
"""An ensemble run's models (`pinnprov train --ensemble N`): the per-cell mean of its members, their std, and the
bounds of the 90 % interval (p05, p95). Only the mean is a velocity model; std and p95 - p05 are spreads (m/s)."""
ENSEMBLE_MODEL_KINDS = (*ENSEMBLE_KINDS, "exact", "pygimli")
"""The kinds an ensemble run may store: its own, and the comparison models a trainer's run may also have."""

_COLUMNS = ("snapshot_id", "run_id", "epoch", "at", "kind", "nx", "nz", "x_min", "x_max", "z_min", "z_max", "sha256",
            "grid_f32")
_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in _COLUMNS) + " FROM model_snapshot"


def _one(rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    return dict(zip(_COLUMNS, rows[0], strict=True)) if rows else None


def epochs(store: Store, run_id: str, kind: str = "pinn") -> list[int]:
    """The epochs at which the run's model of `kind` was captured, in order."""
    rows = store.execute('SELECT DISTINCT "epoch" FROM model_snapshot WHERE run_id = :run_id AND kind = :kind '
                         'ORDER BY "epoch"', {"run_id": run_id, "kind": kind}).rows
    return [int(row[0]) for row in rows]


def snapshot(store: Store, run_id: str, kind: str = "pinn", epoch: int | None = None) -> dict[str, Any] | None:
    """The snapshot of `kind` at `epoch` (or the latest one), None if there is none."""
    params: dict[str, Any] = {"run_id": run_id, "kind": kind}
    if epoch is None:
        where = ' AND "epoch" = (SELECT MAX("epoch") FROM model_snapshot WHERE run_id = :run_id AND kind = :kind)'
    else:
        where, params["epoch"] = ' AND "epoch" = :epoch', epoch
    rows = store.execute(f"{_SELECT} WHERE run_id = :run_id AND kind = :kind{where} ORDER BY \"at\" DESC, "
                         "snapshot_id", params).rows
    return _one(rows)


def run_models(store: Store, run_id: str, epoch: int | None = None) -> dict[str, Any]:
    """What the run page shows: the PINN model at `epoch` (default latest), the epochs to slide over, and the
    baseline and exact models when the run has them.

    An ensemble's run has no PINN model but a mean: then `epochs` are those of its mean and `ensemble` maps each of
    ENSEMBLE_KINDS to its snapshot at `epoch` (or None). An ordinary run's answer has no `ensemble` key."""
    pinn_epochs = epochs(store, run_id)
    models = {"epochs": pinn_epochs, "pinn": snapshot(store, run_id, "pinn", epoch),
              "pygimli": snapshot(store, run_id, "pygimli"), "exact": snapshot(store, run_id, "exact")}
    if not pinn_epochs:
        mean_epochs = epochs(store, run_id, "mean")
        if mean_epochs:
            models["epochs"] = mean_epochs
            models["ensemble"] = {kind: snapshot(store, run_id, kind, epoch) for kind in ENSEMBLE_KINDS}
    return models


def experiment_models(store: Store, experiment: str) -> dict[str, Any]:
    """Each run's latest model of an experiment (the compare page), and one exact model if the runs share one."""
    rows = store.execute(
        "SELECT r.run_id, r.run_name, r.status FROM run r WHERE r.experiment = :experiment AND EXISTS "
        "(SELECT 1 FROM model_snapshot m WHERE m.run_id = r.run_id AND m.kind = 'pinn') "
        "ORDER BY r.started_at, r.run_id", {"experiment": experiment}).rows
    models = []
    exact = None
    for run_id, run_name, status in rows:
        model = snapshot(store, run_id, "pinn")
        if model is not None:
            models.append({"run_name": run_name or run_id, "status": status or "running", **model})
        if exact is None:
            exact = snapshot(store, run_id, "exact")
    return {"models": models, "exact": exact}
