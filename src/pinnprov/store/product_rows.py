"""PROV records of a run's products (files, model snapshots) and of a resumed run's link -> table rows.

Schema version 6 (pinnprov/store/schema.py: `artifact`, `model_snapshot`; `run_relation` rows of relation
resumed_from come from the resumed run's start span). Pure functions, no SQL, shared by both SQL stores through
the write plan (pinnprov/store/write_plan.py).
"""

from __future__ import annotations

from typing import Any

from pinnprov.store.records import ArtifactRecord, ModelSnapshotRecord, RunStartRecord
from pinnprov.store.run_relations import RESUMED_FROM

Row = dict[str, Any]


def artifact_row(record: ArtifactRecord) -> Row:
    return {"artifact_id": record.record_id, "run_id": record.run_id, "epoch": record.epoch, "at": record.at,
            "role": record.role, "uri": record.uri, "sha256": record.sha256, "size_bytes": record.size_bytes,
            "media_type": record.media_type}


def snapshot_row(record: ModelSnapshotRecord) -> Row:
    return {"snapshot_id": record.record_id, "run_id": record.run_id, "epoch": record.epoch, "at": record.at,
            "kind": record.kind, "nx": record.nx, "nz": record.nz, "x_min": record.x_min, "x_max": record.x_max,
            "z_min": record.z_min, "z_max": record.z_max, "sha256": record.sha256, "grid_f32": record.grid_f32}


def resume_relation_rows(record: RunStartRecord) -> list[Row]:
    """The resumed_from relation a resumed run's start carries (none for an ordinary run)."""
    if not record.resumed_from or record.resumed_from == record.run_id:
        return []
    reason = record.resumed_reason
    if record.resumed_checkpoint:
        reason = f"{reason} (checkpoint at epoch {record.resumed_epoch}, sha256 {record.resumed_checkpoint})".strip()
    return [{"run_id": record.run_id, "related_run_id": record.resumed_from, "relation": RESUMED_FROM,
             "at": record.started_at, "agent": record.resumed_agent, "reason": reason}]
