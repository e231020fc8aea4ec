"""The SQL the SQLite sink runs: idempotent upserts keyed by telemetry ids, plus the run summaries.

Separate from the sink's threading so the write logic reads top to bottom. Every statement is safe to
replay: epochs/adaptations/alerts are INSERT .. ON CONFLICT DO NOTHING, run rows are upserts that only
fill what their record knows, and the summaries (`last_epoch`, `lr_min`) are max/min updates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from pinnprov.store import rows
from pinnprov.store.records import AdaptationRecord, AlertRecord, EpochRecord, ProvRecord, RunEndRecord, RunStartRecord
from pinnprov.store.schema import TABLES_BY_NAME


def _columns(table: str) -> list[str]:
    return [column.name for column in TABLES_BY_NAME[table].columns]


def _q(name: str) -> str:
    return f'"{name}"'


Insert = tuple[str, tuple[str, ...], str]
"""(table, columns, ON CONFLICT clause) of an INSERT that `_insert_many` spreads over multi-row statements."""


def _insert(table: str, columns: Sequence[str], conflict: str, rows_: int = 1) -> str:
    """One INSERT of `rows_` value tuples; the ON CONFLICT clause applies to each row, in order."""
    names = ", ".join(_q(c) for c in columns)
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * rows_)} {conflict}"


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
_EPOCH_INSERT: Insert = ("epoch_metric", tuple(EPOCH_COLUMNS), "ON CONFLICT (run_id, epoch) DO NOTHING")
_EPOCH_SQL = _insert(*_EPOCH_INSERT)
_EXTRA_COLUMNS = tuple(_columns("epoch_extra"))
_EXTRA_INSERT: Insert = ("epoch_extra", _EXTRA_COLUMNS, "ON CONFLICT (run_id, epoch, name) DO NOTHING")
_EXTRA_SQL = _insert(*_EXTRA_INSERT)
_ADAPTATION_SQL = _insert("adaptation", _columns("adaptation"), "ON CONFLICT (adaptation_id) DO NOTHING")
_ALERT_SQL = _insert("alert", _columns("alert"), "ON CONFLICT (alert_id) DO NOTHING")
_SUMMARY_UPDATE_SQL = """
UPDATE run SET
  last_epoch = CASE WHEN last_epoch IS NULL OR last_epoch < :epoch THEN :epoch ELSE last_epoch END,
  lr_min = CASE WHEN :lr IS NULL THEN lr_min WHEN lr_min IS NULL OR :lr < lr_min THEN :lr ELSE lr_min END
WHERE run_id = :run_id"""


def _values(row: rows.Row, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(column) for column in columns)


def _epoch_values_general(record: EpochRecord) -> tuple[Any, ...]:
    return _values(rows.epoch_row(record), EPOCH_COLUMNS)


def _extra_values_general(record: EpochRecord) -> list[tuple[Any, ...]]:
    return [_values(extra, _EXTRA_COLUMNS) for extra in rows.epoch_extra_rows(record)]


# The hot path builds epoch tuples directly; it is used only while the tables' columns are in its order.
_FAST_ROWS = tuple(EPOCH_COLUMNS) == rows.EPOCH_VALUE_COLUMNS and _EXTRA_COLUMNS == ("run_id", "epoch", "name", "value")
_LR = EPOCH_COLUMNS.index("learning_rate")
_CHUNKS = (256, 32, 4, 1)
"""Rows per multi-row INSERT: one statement of 256 rows instead of 256 executions costs a third less CPU and
releases the GIL once instead of 256 times (the writer competes with the translating thread for it).
Remainders use the smaller sizes, so at most 4 statement texts per table exist (the sqlite3 cache keeps them)."""
_MULTI: dict[tuple[Insert, int], str] = {}


def _insert_many(conn: sqlite3.Connection, insert: Insert, values: list[object]) -> None:
    """Insert `values`, a flat list of rows of `len(insert[1])` values, with as few statements as possible."""
    width = len(insert[1])
    count = len(values) // width
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    done = 0
    for size in _CHUNKS:
        if count - done < size or (size * width > limit and size > 1):
            continue
        statement = _MULTI.get((insert, size))
        if statement is None:
            statement = _MULTI[insert, size] = _insert(*insert, size)
        step = size * width
        while count - done >= size:
            start = done * width
            conn.execute(statement, values[start : start + step])
            done += size


def _write_epochs(
    conn: sqlite3.Connection, epochs: list[object], extras: list[object], summaries: dict[str, tuple[int, float | None]]
) -> None:
    _insert_many(conn, _EPOCH_INSERT, epochs)
    if extras:
        _insert_many(conn, _EXTRA_INSERT, extras)
    conn.executemany(_RUN_STUB_SQL, [(run_id,) for run_id in summaries])
    conn.executemany(
        _SUMMARY_UPDATE_SQL,
        [{"run_id": run_id, "epoch": top, "lr": low} for run_id, (top, low) in summaries.items()],
    )


def write_records(conn: sqlite3.Connection, records: Sequence[ProvRecord]) -> None:
    """Write records inside the caller's transaction; raises sqlite3 errors for the caller to classify."""
    epochs: list[object] = []  # flat: len(EPOCH_COLUMNS) values per row
    extras: list[object] = []  # flat: 4 values per row
    # run_id -> (highest epoch, lowest finite learning rate) among this call's epochs
    summaries: dict[str, tuple[int, float | None]] = {}
    epoch_values, extra_values = (rows.epoch_values, rows.epoch_extra_values) if _FAST_ROWS else (
        _epoch_values_general, _extra_values_general)
    for record in records:
        if isinstance(record, EpochRecord):
            values = epoch_values(record)
            epochs.extend(values)
            if record.extra:
                for extra in extra_values(record):
                    extras.extend(extra)
            lr = values[_LR]
            summary = summaries.get(record.run_id)
            if summary is None:
                summaries[record.run_id] = (max(-1, record.epoch), lr)
            else:
                top, low = summary
                summaries[record.run_id] = (
                    max(top, record.epoch),
                    lr if low is None or (lr is not None and lr < low) else low,
                )
            continue
        if isinstance(record, RunStartRecord):
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
        _write_epochs(conn, epochs, extras, summaries)
