"""The SQL the SQLite sink runs: idempotent upserts keyed by telemetry ids, plus the run summaries.

Separate from the sink's threading so the write logic reads top to bottom. Every statement is safe to
replay: epochs/adaptations/alerts are INSERT .. ON CONFLICT DO NOTHING, run rows are upserts that only
fill what their record knows, and the summaries (`last_epoch`, `lr_min`) are max/min updates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from collector import rows
from collector.records import AdaptationRecord, AlertRecord, EpochRecord, ProvRecord, RunEndRecord, RunStartRecord
from collector.schema import TABLES_BY_NAME


def _columns(table: str) -> list[str]:
    return [column.name for column in TABLES_BY_NAME[table].columns]


def _q(name: str) -> str:
    return f'"{name}"'


def _insert(table: str, columns: Sequence[str], conflict: str) -> str:
    names = ", ".join(_q(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}"


_RUN_START_COLUMNS = _columns("run")
_RUN_START_FIELDS = [
    c for c in _RUN_START_COLUMNS if c not in {"ended_at", "epochs", "error", "end_span_id", "last_epoch", "lr_min"}
]
# A start fills identity and hyperparameters but never un-ends a run (status stays if the end came first).
_RUN_START_SQL = _insert(
    "run",
    _RUN_START_FIELDS,
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in _RUN_START_FIELDS if c not in {"run_id", "status"})
    + ", status = COALESCE(run.status, excluded.status)",
)
_RUN_END_FIELDS = [
    "run_id",
    "run_name",
    "experiment",
    "status",
    "started_at",
    "ended_at",
    "epochs",
    "error",
    "end_span_id",
]
# An end arriving first still creates the row; identity it repeats never overwrites what the start wrote.
_RUN_END_SQL = _insert(
    "run",
    _RUN_END_FIELDS,
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at, "
    "epochs = excluded.epochs, error = excluded.error, end_span_id = excluded.end_span_id, "
    "run_name = COALESCE(run.run_name, excluded.run_name), "
    "experiment = CASE WHEN run.experiment IS NULL OR run.experiment = '' THEN excluded.experiment "
    "ELSE run.experiment END, started_at = COALESCE(run.started_at, excluded.started_at)",
)
_NAME_TAKEN_SQL = "SELECT 1 FROM run WHERE run_name = ? AND run_id <> ?"
_RUN_STUB_SQL = "INSERT INTO run (run_id) VALUES (?) ON CONFLICT (run_id) DO NOTHING"
_NAME_VALUE_UPSERT = "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value"
_HP_SQL = _insert(
    "run_hyperparameter",
    ["run_id", "name", "value", "value_type"],
    "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value, value_type = excluded.value_type",
)
_RESOURCE_SQL = _insert("run_resource", ["run_id", "name", "value"], _NAME_VALUE_UPSERT)
_SUMMARY_SQL = _insert("run_summary", ["run_id", "name", "value"], _NAME_VALUE_UPSERT)
EPOCH_COLUMNS = _columns("epoch_metric")
_EPOCH_SQL = _insert("epoch_metric", EPOCH_COLUMNS, "ON CONFLICT (run_id, epoch) DO NOTHING")
_EXTRA_SQL = _insert("epoch_extra", _columns("epoch_extra"), "ON CONFLICT (run_id, epoch, name) DO NOTHING")
_ADAPTATION_SQL = _insert("adaptation", _columns("adaptation"), "ON CONFLICT (adaptation_id) DO NOTHING")
_ALERT_SQL = _insert("alert", _columns("alert"), "ON CONFLICT (alert_id) DO NOTHING")
_SUMMARY_UPDATE_SQL = """
UPDATE run SET
  last_epoch = CASE WHEN last_epoch IS NULL OR last_epoch < :epoch THEN :epoch ELSE last_epoch END,
  lr_min = CASE WHEN :lr IS NULL THEN lr_min WHEN lr_min IS NULL OR :lr < lr_min THEN :lr ELSE lr_min END
WHERE run_id = :run_id"""


def _values(row: rows.Row, columns: Sequence[str]) -> tuple:
    return tuple(row.get(column) for column in columns)


def write_records(conn: sqlite3.Connection, records: Sequence[ProvRecord]) -> None:
    """Write records inside the caller's transaction; raises sqlite3 errors for the caller to classify."""
    epochs: list[tuple] = []
    extras: list[tuple] = []
    # run_id -> (highest epoch, lowest finite learning rate) among this call's epochs
    summaries: dict[str, tuple[int, float | None]] = {}
    for record in records:
        if isinstance(record, EpochRecord):
            row = rows.epoch_row(record)
            epochs.append(_values(row, EPOCH_COLUMNS))
            extras.extend(
                _values(extra, ("run_id", "epoch", "name", "value")) for extra in rows.epoch_extra_rows(record)
            )
            top, low = summaries.get(record.run_id, (-1, None))
            lr = row["learning_rate"]
            summaries[record.run_id] = (
                max(top, record.epoch),
                lr if low is None or (lr is not None and lr < low) else low,
            )
        elif isinstance(record, RunStartRecord):
            conn.execute(_RUN_START_SQL, _values(rows.run_start_row(record), _RUN_START_FIELDS))
            conn.executemany(
                _HP_SQL,
                [_values(r, ("run_id", "name", "value", "value_type")) for r in rows.hyperparameter_rows(record)],
            )
            conn.executemany(
                _RESOURCE_SQL, [_values(r, ("run_id", "name", "value")) for r in rows.resource_rows(record)]
            )
        elif isinstance(record, RunEndRecord):
            row = rows.run_end_row(record)
            if (
                row["run_name"] is not None
                and conn.execute(_NAME_TAKEN_SQL, (row["run_name"], record.run_id)).fetchone()
            ):
                row["run_name"] = None  # the name is another run's: keep this run's end, without the name
            conn.execute(_RUN_END_SQL, _values(row, _RUN_END_FIELDS))
            conn.executemany(_SUMMARY_SQL, [_values(r, ("run_id", "name", "value")) for r in rows.summary_rows(record)])
        elif isinstance(record, AdaptationRecord):
            conn.execute(_ADAPTATION_SQL, _values(rows.adaptation_row(record), _columns("adaptation")))
        elif isinstance(record, AlertRecord):
            conn.execute(_ALERT_SQL, _values(rows.alert_row(record), _columns("alert")))
        else:
            raise TypeError(f"not a PROV record: {type(record).__name__}")
    if epochs:
        conn.executemany(_EPOCH_SQL, epochs)
        if extras:
            conn.executemany(_EXTRA_SQL, extras)
        conn.executemany(_RUN_STUB_SQL, [(run_id,) for run_id in summaries])
        conn.executemany(
            _SUMMARY_UPDATE_SQL,
            [{"run_id": run_id, "epoch": top, "lr": low} for run_id, (top, low) in summaries.items()],
        )
