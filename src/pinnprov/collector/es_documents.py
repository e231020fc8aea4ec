"""PROV records -> Elasticsearch bulk actions: document ids, document bodies, and the ndjson bulk body.

Why ids come from telemetry: the collector delivers at least once, so the same span may be written twice.
The document id is the span's identity (run id + span id; the run id alone for run documents; the alert id
for alerts), so re-delivery overwrites instead of duplicating.

Why epoch documents repeat the run's name, experiment, optimizer and activation: Kibana cannot join, and
the paper's Table 2 ("latest loss per run with optimizer and activation") is one Lens table only if every
epoch carries them. The sink keeps the run identity (`RunInfo`) from run-start records.

Run documents are merged, not overwritten: the start span brings identity and hyperparameters, the end span
brings status and summary, and they may arrive in either order. The start is an *upsert* that only sets
`status: running` when the document does not exist yet, so a late start never reopens a finished run.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

from pinnprov.collector.es_metric_documents import metric_document
from pinnprov.core.es_indices import index_name
from pinnprov.core.fields import HYPERPARAMETERS, MEASURED_EPOCH_FIELDS, hyperparameter
from pinnprov.store.records import (
    AdaptationRecord,
    AlertRecord,
    ArtifactRecord,
    ByRecordType,
    EpochRecord,
    MetricPointRecord,
    MetricResourceRecord,
    ModelSnapshotRecord,
    ProvRecord,
    RunEndRecord,
    RunStartRecord,
    ScalarValue,
)

HP_OPTIMIZER = hyperparameter("optimizer").name
HP_ACTIVATION = hyperparameter("activation").name
_PROMOTED_ES = tuple((hp.es_field, hp.name, hp.kind) for hp in HYPERPARAMETERS if hp.es_field)
"""(runs-index field, recorded name, kind) of the hyperparameters with a typed field of their own."""

EPOCH_METRICS: tuple[str, ...] = tuple(field.name for field in MEASURED_EPOCH_FIELDS)
"""Numeric epoch fields; a non-finite value is left out of the document and named in `non_finite`."""
_epoch_metrics_of = operator.attrgetter(*EPOCH_METRICS)


@dataclass(frozen=True)
class RunInfo:
    """What every epoch/adaptation/alert document repeats about its run."""

    run_name: str = ""
    experiment: str = ""
    optimizer: str = ""
    activation: str = ""

    @functools.cached_property
    def _fields(self) -> dict[str, str]:
        names = ("run_name", "experiment", "optimizer", "activation")
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def fields(self) -> dict[str, str]:
        """The non-empty identity fields (computed once: every epoch document of the run repeats them)."""
        return self._fields


class RunCache:
    """run id -> RunInfo, least recently used evicted (a collector sees many runs over its life)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: OrderedDict[str, RunInfo] = OrderedDict()
        self.capacity = capacity

    def get(self, run_id: str) -> RunInfo | None:
        info = self._items.get(run_id)
        if info is not None:
            self._items.move_to_end(run_id)
        return info

    def put(self, run_id: str, info: RunInfo) -> None:
        self._items[run_id] = info
        self._items.move_to_end(run_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class BulkAction:
    """One bulk operation: `index` (whole document) or `update` (partial merge with upsert)."""

    op: str
    index: str
    doc_id: str
    body: Mapping[str, Any]

    def lines(self) -> tuple[dict[str, Any], Mapping[str, Any]]:
        meta: dict[str, Any] = {"_index": self.index, "_id": self.doc_id} if self.doc_id else {"_index": self.index}
        if self.op == "update":
            meta["retry_on_conflict"] = 3  # start and end of one run may be merged concurrently
        return {self.op: meta}, self.body


_Value = TypeVar("_Value")


def iso(timestamp: float) -> str:
    """Unix seconds -> ISO 8601 UTC with milliseconds, the resolution of an Elasticsearch `date`."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(value: _Value) -> _Value | None:
    """JSON has no NaN/Infinity and Elasticsearch rejects them: drop non-finite floats (callers record it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _numeric_map(values: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Finite numbers keyed safely (a dot would become an object path in the mapping); non-finite keys."""
    kept: dict[str, float] = {}
    dropped: list[str] = []
    for key, value in values.items():
        safe = str(key).replace(".", "_")
        number = float(value)
        if math.isfinite(number):
            kept[safe] = number
        else:
            dropped.append(safe)
    return kept, dropped


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _promoted_value(value: ScalarValue | None, kind: str) -> str | float | int | None:
    """A hyperparameter as its typed runs-index field, or None when it does not fit the type (left out)."""
    if kind == "str":
        return None if value in (None, "") else str(value)
    if not _is_number(value) or not math.isfinite(float(value)):
        return None
    if kind == "int":
        return int(value) if float(value).is_integer() else None
    return float(value)


def _scalar_map(values: Mapping[str, ScalarValue]) -> dict[str, ScalarValue]:
    return {str(key): value for key, value in values.items() if _finite(value) is not None}  # finite: unchanged


def run_info_from_start(record: RunStartRecord) -> RunInfo:
    hp = record.hyperparameters
    return RunInfo(
        run_name=record.run_name,
        experiment=record.experiment,
        optimizer=str(hp.get(HP_OPTIMIZER, "") or ""),
        activation=str(hp.get(HP_ACTIVATION, "") or ""),
    )


def run_info_from_document(source: Mapping[str, Any]) -> RunInfo:
    """Rebuild a RunInfo from a stored run document (after a collector restart)."""
    return RunInfo(
        run_name=str(source.get("run_name", "") or ""),
        experiment=str(source.get("experiment", "") or ""),
        optimizer=str(source.get("optimizer", "") or ""),
        activation=str(source.get("activation", "") or ""),
    )


def _run_start_action(record: RunStartRecord, prefix: str) -> BulkAction:
    hp = record.hyperparameters
    doc: dict[str, Any] = {
        "@timestamp": iso(record.started_at),
        "run_id": record.run_id,
        "record_id": record.record_id,
        "run_name": record.run_name,
        "experiment": record.experiment,
        "started_at": iso(record.started_at),
        "hyperparameters": _scalar_map(hp),
        "dataset_name": record.dataset_name,
        "dataset_sha256": record.dataset_sha256,
        "dataset_picks": record.dataset_picks,
        "dataset_source": record.dataset_source,
        "host": record.host,
        "service": record.service,
        "resource": _scalar_map(record.resource),
    }
    for field, name, kind in _PROMOTED_ES:
        value = _promoted_value(hp.get(name), kind)
        if value is not None:
            doc[field] = value
    body = {"doc": doc, "upsert": {**doc, "status": "running"}}
    return BulkAction("update", index_name(prefix, "runs"), record.run_id, body)


def _run_end_action(record: RunEndRecord) -> dict[str, Any]:
    summary, _ = _numeric_map(record.summary)
    doc: dict[str, Any] = {
        "run_id": record.run_id,
        "status": record.status,
        "ended_at": iso(record.ended_at),
        "epochs": record.epochs,
        "summary": summary,
    }
    if record.error:
        doc["error"] = record.error
    if record.run_name:
        doc["run_name"] = record.run_name
    if record.experiment:
        doc["experiment"] = record.experiment
    if record.started_at:
        doc["started_at"] = iso(record.started_at)
        doc["@timestamp"] = iso(record.started_at)
    return doc


def _epoch_document(record: EpochRecord, run: RunInfo) -> dict[str, Any]:
    ended = iso(record.ended_at)
    doc: dict[str, Any] = {
        "@timestamp": ended,
        "run_id": record.run_id,
        "record_id": record.record_id,
        **run.fields(),
        "epoch": record.epoch,
        "started_at": iso(record.started_at),
        "ended_at": ended,
    }
    non_finite: list[str] = []
    for name, value in zip(EPOCH_METRICS, _epoch_metrics_of(record), strict=True):
        if math.isfinite(value):
            doc[name] = float(value)
        else:
            non_finite.append(name)
    if record.extra:
        extra, dropped = _numeric_map(record.extra)
        doc["extra"] = extra
        non_finite.extend(f"extra.{key}" for key in dropped)
    if non_finite:
        doc["non_finite"] = non_finite
    return doc


def _epoch_action(record: EpochRecord, prefix: str, run: RunInfo) -> BulkAction:
    doc_id = f"{record.run_id}-{record.record_id}"
    return BulkAction("index", index_name(prefix, "epochs"), doc_id, _epoch_document(record, run))


def _run_end_update(record: RunEndRecord, prefix: str, run: RunInfo) -> BulkAction:
    body = {"doc": _run_end_action(record), "doc_as_upsert": True}
    return BulkAction("update", index_name(prefix, "runs"), record.run_id, body)


def _adaptation_action(record: AdaptationRecord, prefix: str, run: RunInfo) -> BulkAction:
    doc = {
        "@timestamp": iso(record.at),
        "run_id": record.run_id,
        "record_id": record.record_id,
        "run_name": run.run_name,
        "experiment": run.experiment,
        "epoch": record.epoch,
        "parameter": record.parameter,
        "old_value": record.old_value,
        "new_value": record.new_value,
        "agent": record.agent,
        "reason": record.reason,
        "command_id": record.command_id,
    }
    doc = {key: value for key, value in doc.items() if value != ""}
    return BulkAction("index", index_name(prefix, "adaptations"), f"{record.run_id}-{record.record_id}", doc)


def _alert_action(record: AlertRecord, prefix: str, run: RunInfo) -> BulkAction:
    doc = {
        "@timestamp": iso(record.at),
        "alert_id": record.alert_id,
        "rule": record.rule,
        "run_id": record.run_id,
        "run_name": run.run_name,
        "experiment": run.experiment,
        "epoch": record.epoch,
        "metric": record.metric,
        "value": _finite(float(record.value)),
        "threshold": _finite(float(record.threshold)),
        "message": record.message,
        "actions": [kind for kind in record.actions.split(",") if kind],
    }
    doc = {key: value for key, value in doc.items() if value not in ("", None)}
    return BulkAction("index", index_name(prefix, "alerts"), record.alert_id, doc)


def _artifact_update(record: ArtifactRecord, prefix: str, run: RunInfo) -> BulkAction:
    """A file the run produced, merged into its run document under its role (the newest file of a role wins: the
    last checkpoint, the final networks); `artifacts` is a flattened field, so roles add no mapping."""
    role = record.role.replace(".", "_") or "output"
    entry = {"role": record.role, "uri": record.uri, "sha256": record.sha256, "size_bytes": str(record.size_bytes),
             "media_type": record.media_type, "epoch": str(record.epoch), "at": iso(record.at)}
    body = {"doc": {"run_id": record.run_id, "artifacts": {role: entry}}, "doc_as_upsert": True}
    return BulkAction("update", index_name(prefix, "runs"), record.run_id, body)


def _snapshot_update(record: ModelSnapshotRecord, prefix: str, run: RunInfo) -> BulkAction | None:
    """The run document links its latest model (the grid itself stays in the SQL store and the UI's /runs page)."""
    if record.kind != "pinn":
        return None
    latest = {"epoch": record.epoch, "at": iso(record.at), "kind": record.kind, "sha256": record.sha256,
              "nx": record.nx, "nz": record.nz, "ui_path": f"/runs/{record.run_id}"}
    body = {"doc": {"run_id": record.run_id, "latest_model": latest}, "doc_as_upsert": True}
    return BulkAction("update", index_name(prefix, "runs"), record.run_id, body)


def _metric_action(record: MetricPointRecord, prefix: str, run: RunInfo) -> BulkAction:
    """A `create` without `_id` into the metrics data stream (a TSDS derives the id from the dimensions)."""
    return BulkAction("create", index_name(prefix, "metrics"), "", metric_document(record, iso(record.at)))


_ACTIONS: ByRecordType[Callable[[Any, str, RunInfo], BulkAction | None]] = ByRecordType({
    EpochRecord: _epoch_action,
    RunStartRecord: lambda record, prefix, run: _run_start_action(record, prefix),
    RunEndRecord: _run_end_update,
    AdaptationRecord: _adaptation_action,
    AlertRecord: _alert_action,
    MetricResourceRecord: lambda record, prefix, run: None,  # repeated in each point's document
    MetricPointRecord: _metric_action,
    ArtifactRecord: _artifact_update,
    ModelSnapshotRecord: _snapshot_update,
})
"""The document builder per record type, through the dispatch the SQL stores' write plans use
(pinnprov/store/records.py `ByRecordType`); None: the record needs no document of its own."""


def to_action(record: ProvRecord, prefix: str, run: RunInfo) -> BulkAction | None:
    """The bulk action writing `record` (None: nothing to write); `run` is the record's run identity."""
    return _ACTIONS(record)(record, prefix, run)


def encode_bulk(actions: Iterable[BulkAction]) -> bytes:
    """The ndjson body of a bulk request: action line, source line, ..., each newline-terminated."""
    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    lines: list[str] = []
    for action in actions:
        meta, body = action.lines()
        lines.append(dumps(meta))
        lines.append(dumps(body))
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def document_fields(doc: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Dotted leaf paths of a document (for checking documents against the template mappings)."""
    paths: set[str] = set()
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths |= document_fields(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def indexed_documents(actions: Sequence[BulkAction]) -> list[Mapping[str, Any]]:
    """The full documents an action list writes (the upsert/doc side of updates), for inspection."""
    docs: list[Mapping[str, Any]] = []
    for action in actions:
        if action.op == "index":
            docs.append(action.body)
        else:
            docs.append(action.body.get("upsert") or action.body["doc"])
    return docs
