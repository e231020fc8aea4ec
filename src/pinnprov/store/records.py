"""PROV records: what translation produces from OTLP and what every sink consumes.

They mirror the domain tables of the PROV schema (run, epoch_metric, adaptation, alert). Keys come from
the telemetry (run_id = trace id, record_id = span id), so writing the same record twice is a no-op:
delivery is at-least-once, storage is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

ScalarValue = str | int | float | bool


@dataclass(frozen=True)
class RunStartRecord:
    """A run became known: identity, environment and every hyperparameter (from the run-start span)."""

    run_id: str
    record_id: str  # span id (16 hex digits)
    run_name: str
    experiment: str
    started_at: float  # Unix seconds
    hyperparameters: Mapping[str, ScalarValue]  # keys without the "pinn.hp." prefix, e.g. "optimizer"
    dataset_name: str = ""
    dataset_sha256: str = ""
    dataset_picks: int = 0
    dataset_source: str = ""
    host: str = ""
    service: str = ""
    resource: Mapping[str, ScalarValue] = field(default_factory=dict)  # resource attributes (devices, TF version)
    resumed_from: str = ""  # the run this one continues from its checkpoint (relation resumed_from), if any
    resumed_epoch: int = 0
    resumed_checkpoint: str = ""  # sha256 of that checkpoint
    resumed_agent: str = ""
    resumed_reason: str = ""


@dataclass(frozen=True)
class EpochRecord:
    """One captured epoch (Table 1)."""

    run_id: str
    record_id: str
    epoch: int
    started_at: float
    ended_at: float
    elapsed_s: float
    loss: float
    loss_bc: float
    loss_residual: float
    loss_data: float
    learning_rate: float
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptationRecord:
    """One change to a running configuration, with the agent that decided it."""

    run_id: str
    record_id: str
    epoch: int
    at: float
    parameter: str
    old_value: str
    new_value: str
    agent: str
    reason: str = ""
    command_id: str = ""


@dataclass(frozen=True)
class RunEndRecord:
    """A run finished (from the root span's end)."""

    run_id: str
    record_id: str
    ended_at: float
    status: str  # completed | stopped | failed
    epochs: int
    error: str = ""
    summary: Mapping[str, float] = field(default_factory=dict)
    run_name: str = ""  # repeated so a store that missed the start span can still name the run
    experiment: str = ""
    started_at: float = 0.0


@dataclass(frozen=True)
class AlertRecord:
    """An alert rule fired for a run at an epoch."""

    alert_id: str  # deterministic: rule name + run id + epoch, so re-evaluation is idempotent
    rule: str
    run_id: str
    epoch: int
    at: float
    metric: str
    value: float
    threshold: float
    message: str = ""
    actions: str = ""  # comma-separated action kinds that ran


@dataclass(frozen=True)
class MetricResourceRecord:
    """The OpenTelemetry resource of metric points (one process; a trainer's carries its run id)."""

    resource_id: str  # hash of the resource's attributes
    run_id: str | None  # pinn.run.id of the resource, None if it names no run
    service: str
    host: str
    attributes: str  # every resource attribute, a JSON object
    first_seen: float  # Unix seconds


class MetricPointRecord(NamedTuple):
    """One OTLP metric data point (gauge, sum, histogram or exponential histogram), in `metric_point`'s column
    order (the SQL row is the record's first fields as they are; pinnprov/store/write_plan.py checks it).

    A NamedTuple rather than a frozen dataclass like the other records: a collector builds one per data point,
    and a tuple is built in a sixth of the time (0.5 vs 3-4 us, measured), which is a fifth of a point's cost.

    point_id is the time (16 hex digits of nanoseconds) and a hash of resource, scope, metric name, kind and
    attributes: a point delivered twice is one row.
    Non-finite numbers are None here (NULL in SQL, left out in Elasticsearch).
    """

    point_id: str
    resource_id: str
    run_id: str | None  # the point's pinn.run.id, else its resource's; None: kept under its resource
    name: str
    unit: str
    kind: str  # gauge | sum | histogram | exponential_histogram
    temporality: str | None  # delta | cumulative; None for gauges
    monotonic: int | None  # sums: 1 or 0
    scope: str
    started_at: float | None
    at: float
    attributes: str  # JSON object
    value: float | None = None
    hist_count: int | None = None
    hist_sum: float | None = None
    hist_min: float | None = None
    hist_max: float | None = None
    bounds: str | None = None  # JSON list
    bucket_counts: str | None = None  # JSON list
    scale: int | None = None
    zero_count: int | None = None
    positive_offset: int | None = None
    positive_counts: str | None = None
    negative_offset: int | None = None
    negative_counts: str | None = None
    resource: MetricResourceRecord | None = None  # (not a column) for sinks that repeat it, e.g. Elasticsearch


@dataclass(frozen=True)
class ArtifactRecord:
    """A file a run produced (network, checkpoint, grid, figure, result.json, a user's file): a PROV entity."""

    run_id: str
    record_id: str  # span id
    epoch: int  # epochs completed when it was written
    at: float
    role: str
    uri: str
    sha256: str
    size_bytes: int
    media_type: str = ""


@dataclass(frozen=True)
class ModelSnapshotRecord:
    """The velocity model on its grid at an epoch (kind pinn), or the baseline's or exact model for comparison."""

    run_id: str
    record_id: str  # span id
    epoch: int
    at: float
    kind: str
    nx: int
    nz: int
    x_min: float
    x_max: float
    z_min: float
    z_max: float
    sha256: str  # of the float32 bytes
    grid_f32: str  # base64 of nz * nx float32 little-endian, row-major


ProvRecord = (RunStartRecord | EpochRecord | AdaptationRecord | RunEndRecord | AlertRecord | MetricResourceRecord
              | MetricPointRecord | ArtifactRecord | ModelSnapshotRecord)

RECORD_TYPES: tuple[type[ProvRecord], ...] = (RunStartRecord, EpochRecord, AdaptationRecord, RunEndRecord, AlertRecord,
                                              MetricResourceRecord, MetricPointRecord, ArtifactRecord,
                                              ModelSnapshotRecord)

_Entry = TypeVar("_Entry")


class ByRecordType(Generic[_Entry]):
    """One entry (a write plan, a document builder) per PROV record type, looked up by a record's type.

    The one dispatch over record types: the SQL stores' write plans (pinnprov/store/write_plan.py) and the
    Elasticsearch documents (pinnprov/collector/es_documents.py) go through it. Every record type must have an
    entry, so a new record type fails at import everywhere instead of at run time in one sink.
    """

    def __init__(self, entries: Mapping[type[ProvRecord], _Entry]) -> None:
        missing = [kind.__name__ for kind in RECORD_TYPES if kind not in entries]
        if missing or len(entries) != len(RECORD_TYPES):
            raise TypeError(f"an entry per PROV record type is needed; missing {missing}, have {list(entries)}")
        self._entries: dict[type, _Entry] = dict(entries)

    def __call__(self, record: object) -> _Entry:
        """The entry of `record`'s type; TypeError for anything but a PROV record."""
        entry = self._entries.get(type(record))
        if entry is None:
            kind = next((kind for kind in RECORD_TYPES if isinstance(record, kind)), None)  # a subclass
            if kind is None:
                raise TypeError(f"not a PROV record: {type(record).__name__}")
            entry = self._entries[kind]
        return entry
