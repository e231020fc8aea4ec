"""PROV records -> table rows (plain dicts keyed by column name), shared by every SQL sink.

Pure functions, no SQL: the SQLite sink and a MonetDB sink write the same rows with their own upsert
syntax. Non-finite floats become NULL with a marker naming them (`nonfinite`), so NaN never reaches a
database that would refuse it and the fact that the loss diverged is kept.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Collection, Mapping
from typing import Any

from pinnprov.core import vocabulary as v
from pinnprov.core.fields import EPOCH_FIELDS, MEASURED_EPOCH_FIELDS, PROMOTED_HYPERPARAMETERS
from pinnprov.store.records import AdaptationRecord, AlertRecord, EpochRecord, RunEndRecord, RunStartRecord, ScalarValue

Row = dict[str, Any]

_CONVERTERS: dict[str, type] = {"str": str, "bool": str, "int": int, "float": float}
# run column -> (recorded hyperparameter name, converter), from the one schema of fields
_HP_COLUMNS: dict[str, tuple[str, type]] = {
    hp.column: (hp.name, _CONVERTERS[hp.kind]) for hp in PROMOTED_HYPERPARAMETERS
}
_MEASURED = tuple(field.name for field in MEASURED_EPOCH_FIELDS)


def finite(value: float | None) -> float | None:
    """The value if it is a finite number, else None (stored as SQL NULL)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def nonfinite_marker(values: Mapping[str, float]) -> str | None:
    """'loss=nan,loss_bc=inf' for the non-finite entries, None when all are finite."""
    marks = [f"{name}={value!r}" for name, value in values.items() if not math.isfinite(value)]
    return ",".join(marks) or None


def _convert(value: ScalarValue | None, kind: type) -> str | int | float | None:
    """Best-effort typed copy of a hyperparameter for its run column; None if it does not fit the type."""
    if value is None or isinstance(value, bool):
        return None if kind is not str else (None if value is None else str(value).lower())
    try:
        if kind is str:
            return str(value)
        if kind is int:
            number = float(value)
            return int(number) if number.is_integer() else None
        return finite(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def hp_text(value: ScalarValue) -> tuple[str, str]:
    """A hyperparameter value as (text, value_type); the text round-trips for every type."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, float):
        return repr(value), "float"
    return str(value), "str"


def _devices(value: ScalarValue | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            return value
        if isinstance(items, list):
            return ", ".join(str(item) for item in items)
    return str(value)


def run_start_row(record: RunStartRecord) -> Row:
    resource = record.resource
    pid = resource.get(v.PROCESS_PID)
    row: Row = {
        "run_id": record.run_id,
        "run_name": record.run_name or None,
        "experiment": record.experiment,
        "status": "running",
        "started_at": record.started_at,
        "host": record.host,
        "service": record.service,
        "process_pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        "user_name": str(resource.get(v.PROCESS_OWNER, "")) or None,
        "device": _devices(resource.get(v.RESOURCE_DEVICES)),
        "tensorflow_version": str(resource.get(v.RESOURCE_TENSORFLOW_VERSION, "")) or None,
        "dataset_name": record.dataset_name,
        "dataset_sha256": record.dataset_sha256,
        "dataset_picks": record.dataset_picks,
        "dataset_source": record.dataset_source,
        "start_span_id": record.record_id,
    }
    for column, (name, kind) in _HP_COLUMNS.items():
        row[column] = _convert(record.hyperparameters.get(name), kind)
    return row


def hyperparameter_rows(record: RunStartRecord) -> list[Row]:
    rows = []
    for name, value in sorted(record.hyperparameters.items()):
        text, value_type = hp_text(value)
        rows.append({"run_id": record.run_id, "name": name, "value": text, "value_type": value_type})
    return rows


def resource_rows(record: RunStartRecord) -> list[Row]:
    return [
        {"run_id": record.run_id, "name": name, "value": hp_text(value)[0]}
        for name, value in sorted(record.resource.items())
    ]


def run_end_row(record: RunEndRecord) -> Row:
    return {
        "run_id": record.run_id,
        "run_name": record.run_name or None,
        "experiment": record.experiment,
        "status": record.status,
        "started_at": record.started_at or None,
        "ended_at": record.ended_at,
        "epochs": record.epochs,
        "error": record.error,
        "end_span_id": record.record_id,
    }


def summary_rows(record: RunEndRecord) -> list[Row]:
    return [{"run_id": record.run_id, "name": k, "value": finite(val)} for k, val in sorted(record.summary.items())]


def epoch_row(record: EpochRecord) -> Row:
    measured = {name: getattr(record, name) for name in _MEASURED}
    row: Row = {
        "run_id": record.run_id,
        "epoch": record.epoch,
        "span_id": record.record_id,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
    }
    row.update({name: finite(value) for name, value in measured.items()})
    row["nonfinite"] = nonfinite_marker(measured)
    return row


EPOCH_VALUE_COLUMNS = ("run_id", "epoch", "span_id", "started_at", "ended_at", *_MEASURED, "nonfinite")
"""The column order of `epoch_values`: the keys and times, the measured fields of pinnprov/core/fields.py, the
marker."""
assert EPOCH_FIELDS[0].name == "epoch"  # the key; MEASURED_EPOCH_FIELDS are the rest

_measured_of = operator.attrgetter(*_MEASURED)
_ONLY_FLOAT = {float}


def epoch_values(record: EpochRecord) -> tuple[Any, ...]:
    """`epoch_row(record)` as a tuple in EPOCH_VALUE_COLUMNS order, without the dicts: the write hot path.

    The common case (all measurements finite floats) is decided with one set of types and one sum (NaN and
    +-inf make the sum non-finite; an overflowing sum of finite values only costs the slow path); anything else
    (ints, bools, non-finite values) takes `epoch_row`.
    """
    measured = _measured_of(record)
    if set(map(type, measured)) == _ONLY_FLOAT and math.isfinite(sum(measured)):
        return (record.run_id, record.epoch, record.record_id, record.started_at, record.ended_at, *measured, None)
    row = epoch_row(record)
    return tuple(row[column] for column in EPOCH_VALUE_COLUMNS)


def epoch_extra_values(record: EpochRecord) -> list[tuple[Any, ...]]:
    """`epoch_extra_rows(record)` as (run_id, epoch, name, value) tuples, without the dicts."""
    items: Collection[tuple[str, float]] = record.extra.items()
    if len(items) > 1:
        items = sorted(items)
    run_id, epoch = record.run_id, record.epoch
    return [
        (run_id, epoch, name, value if type(value) is float and value - value == 0.0 else finite(value))
        for name, value in items
    ]


def epoch_extra_rows(record: EpochRecord) -> list[Row]:
    return [
        {"run_id": record.run_id, "epoch": record.epoch, "name": name, "value": finite(value)}
        for name, value in sorted(record.extra.items())
    ]


def adaptation_row(record: AdaptationRecord) -> Row:
    return {
        "adaptation_id": record.record_id,
        "run_id": record.run_id,
        "epoch": record.epoch,
        "at": record.at,
        "parameter": record.parameter,
        "old_value": record.old_value,
        "new_value": record.new_value,
        "agent": record.agent,
        "reason": record.reason,
        "command_id": record.command_id or None,
    }


def alert_row(record: AlertRecord) -> Row:
    return {
        "alert_id": record.alert_id,
        "rule": record.rule,
        "run_id": record.run_id,
        "epoch": record.epoch,
        "at": record.at,
        "metric": record.metric,
        "value": finite(record.value),
        "threshold": finite(record.threshold),
        "message": record.message,
        "actions": record.actions,
    }
