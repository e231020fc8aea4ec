"""PROV records: what translation produces from OTLP and what every sink consumes.

They mirror the domain tables of the PROV schema (run, epoch_metric, adaptation, alert). Keys come from
the telemetry (run_id = trace id, record_id = span id), so writing the same record twice is a no-op:
delivery is at-least-once, storage is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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


ProvRecord = RunStartRecord | EpochRecord | AdaptationRecord | RunEndRecord | AlertRecord

RECORD_TYPES: tuple[type[ProvRecord], ...] = (RunStartRecord, EpochRecord, AdaptationRecord, RunEndRecord, AlertRecord)

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
