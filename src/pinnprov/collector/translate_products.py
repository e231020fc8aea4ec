"""OTLP spans of a run's products -> PROV records: `pinn.artifact` (a file) and `pinn.model.snapshot` (the velocity
model at an epoch), and the resume attributes of a run-start span.

Same rules as the other spans (pinnprov/collector/translate.py): ids from the span, the run id attribute must agree
with the trace id, a wrong type or a missing required attribute rejects the span. A snapshot's values must decode
to exactly nx * nz float32 numbers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pinnprov.collector.epoch_rules import EPOCH_IN_RANGE, Rejected, span_times
from pinnprov.collector.otlp_values import Plain, get_float, get_int, get_str
from pinnprov.core import vocabulary as v
from pinnprov.store.records import ArtifactRecord, ModelSnapshotRecord

PRODUCT_SPANS = frozenset({v.ARTIFACT_SPAN, v.SNAPSHOT_SPAN})
MAX_SNAPSHOT_CELLS = 1 << 14  # 16,384 cells = 64 KiB of float32: within the attribute size limit as base64


def _epoch(attrs: Mapping[str, Plain]) -> int:
    epoch = get_int(attrs, v.EPOCH, required=True)
    EPOCH_IN_RANGE.check(epoch)
    return epoch


def artifact(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain]) -> ArtifactRecord:
    at, _ = span_times(span.start_time_unix_nano, span.end_time_unix_nano)
    sha = get_str(attrs, v.ARTIFACT_SHA256, required=True).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise Rejected("bad_attribute", f"{v.ARTIFACT_SHA256} must be 64 hex digits")
    size = get_int(attrs, v.ARTIFACT_SIZE)
    if size < 0:
        raise Rejected("bad_attribute", f"{v.ARTIFACT_SIZE} must be >= 0, got {size}")
    return ArtifactRecord(
        run_id=run_id, record_id=span_id, epoch=_epoch(attrs), at=at,
        role=get_str(attrs, v.ARTIFACT_ROLE, required=True), uri=get_str(attrs, v.ARTIFACT_URI, required=True),
        sha256=sha, size_bytes=size, media_type=get_str(attrs, v.ARTIFACT_MEDIA_TYPE),
    )


def snapshot(span: Span, run_id: str, span_id: str, attrs: Mapping[str, Plain]) -> ModelSnapshotRecord:
    at, _ = span_times(span.start_time_unix_nano, span.end_time_unix_nano)
    nx, nz = get_int(attrs, v.SNAPSHOT_NX, required=True), get_int(attrs, v.SNAPSHOT_NZ, required=True)
    if not (nx > 0 and nz > 0 and nx * nz <= MAX_SNAPSHOT_CELLS):
        raise Rejected("bad_attribute", f"snapshot grid {nx} x {nz} outside 1..{MAX_SNAPSHOT_CELLS} cells")
    text = get_str(attrs, v.SNAPSHOT_VALUES, required=True)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("bad_attribute", f"{v.SNAPSHOT_VALUES} is not base64") from None
    if len(raw) != 4 * nx * nz:
        raise Rejected("bad_attribute", f"{v.SNAPSHOT_VALUES} holds {len(raw)} bytes, expected {4 * nx * nz}")
    return snapshot_record(
        run_id=run_id, record_id=span_id, epoch=_epoch(attrs), at=at,
        kind=get_str(attrs, v.SNAPSHOT_KIND) or "pinn", nx=nx, nz=nz,
        x_min=get_float(attrs, v.SNAPSHOT_X_MIN), x_max=get_float(attrs, v.SNAPSHOT_X_MAX),
        z_min=get_float(attrs, v.SNAPSHOT_Z_MIN), z_max=get_float(attrs, v.SNAPSHOT_Z_MAX), raw=raw, text=text,
    )


def snapshot_record(*, run_id: str, record_id: str, epoch: int, at: float, kind: str, nx: int, nz: int,
                    x_min: float, x_max: float, z_min: float, z_max: float, raw: bytes,
                    text: str | None = None) -> ModelSnapshotRecord:
    """The record of a snapshot's float32 bytes `raw` (nz * nx, little-endian, row-major): its SHA-256 and its
    base64 `text` (as it travelled in the span, kept verbatim; encoded here when the bytes come from a driver that
    writes its records directly, as an ensemble's mean and spread do)."""
    if len(raw) != 4 * nx * nz:
        raise ValueError(f"snapshot holds {len(raw)} bytes, expected {4 * nx * nz} for {nx} x {nz} cells")
    return ModelSnapshotRecord(
        run_id=run_id, record_id=record_id, epoch=epoch, at=at, kind=kind, nx=nx, nz=nz, x_min=x_min, x_max=x_max,
        z_min=z_min, z_max=z_max, sha256=hashlib.sha256(raw).hexdigest(),
        grid_f32=base64.b64encode(raw).decode("ascii") if text is None else text,
    )


def resume_fields(attrs: Mapping[str, Plain]) -> dict[str, str | int]:
    """The RunStartRecord fields of a resumed run (empty for an ordinary one)."""
    source = get_str(attrs, v.RUN_RESUMED_FROM)
    if not source:
        return {}
    return {"resumed_from": source.lower(), "resumed_epoch": get_int(attrs, v.RUN_RESUMED_EPOCH),
            "resumed_checkpoint": get_str(attrs, v.RUN_RESUMED_CHECKPOINT),
            "resumed_agent": get_str(attrs, v.RUN_RESUMED_AGENT),
            "resumed_reason": get_str(attrs, v.RUN_RESUMED_REASON)}
