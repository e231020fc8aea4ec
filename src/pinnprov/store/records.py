"""PROV records: what translation produces from OTLP and what every sink consumes.

They mirror the domain tables of the PROV schema (run, epoch_metric, adaptation, alert). Keys come from
the telemetry (run_id = trace id, record_id = span id), so writing the same record twice is a no-op:
delivery is at-least-once, storage is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
