"""The SQL the SQLite sink runs: the write plans of pinnprov/store/write_plan.py rendered as idempotent upserts.

Separate from the sink's threading so the write logic reads top to bottom. Every statement is
`INSERT ... ON CONFLICT (<primary key>) DO UPDATE SET <column> = <its merge rule>` (or DO NOTHING for append-only
facts: epochs, adaptations, alerts), so every statement is safe to replay. Per batch: the `run` starts and ends
record by record in order, then the bulk tables, then the epoch counters (`last_epoch` max, `lr_min` min).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

from pinnprov.store import rows, write_plan
from pinnprov.store.records import ProvRecord
from pinnprov.store.write_plan import EPOCHS, EXTRAS, TableWrite


def _q(name: str) -> str:
    return f'"{name}"'


def upsert_sql(write: TableWrite, rows_: int = 1) -> str:
    """One INSERT of `rows_` value tuples in `write.columns` order; the ON CONFLICT clause applies to each row, in
    order, with the write's merge rule per column."""
    names = ", ".join(_q(c) for c in write.columns)
    marks = "(" + ", ".join("?" for _ in write.columns) + ")"
    key = ", ".join(write.key)
    sets = [f"{_q(c)} = {write.rules[c].sql(c, write.table)}" for c in write.updates]
    conflict = f"ON CONFLICT ({key}) " + (f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING")
    return f"INSERT INTO {write.table} ({names}) VALUES {', '.join([marks] * rows_)} {conflict}"


def taken_sql(write: TableWrite, column: str) -> str:
    """Whether another row than the key's holds a unique value (for `write.yields_unique`)."""
    others = " OR ".join(f"{_q(k)} <> ?" for k in write.key)
    return f"SELECT 1 FROM {write.table} WHERE {_q(column)} = ? AND ({others})"


EPOCH_COLUMNS = list(EPOCHS.columns)
# The hot path builds epoch tuples directly; it is used only while the tables' columns are in its order.
_FAST_ROWS = tuple(EPOCH_COLUMNS) == rows.EPOCH_VALUE_COLUMNS and EXTRAS.columns == ("run_id", "epoch", "name", "value")
_CHUNKS = (256, 32, 4, 1)
"""Rows per multi-row INSERT: one statement of 256 rows instead of 256 executions costs a third less CPU and
releases the GIL once instead of 256 times (the writer competes with the translating thread for it).
Remainders use the smaller sizes, so at most 4 statement texts per table exist (the sqlite3 cache keeps them)."""
_SQL: dict[tuple[TableWrite, int], str] = {}


def _sql(write: TableWrite, size: int = 1) -> str:
    statement = _SQL.get((write, size))
    if statement is None:
        statement = _SQL[write, size] = upsert_sql(write, size)
    return statement


def _insert_many(conn: sqlite3.Connection, write: TableWrite, values: list[Any]) -> None:
    """Insert `values`, a flat list of rows of `len(write.columns)` values, with as few statements as possible."""
    width = len(write.columns)
    count = len(values) // width
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    done = 0
    for size in _CHUNKS:
        if count - done < size or (size * width > limit and size > 1):
            continue
        statement = _sql(write, size)
        step = size * width
        while count - done >= size:
            start = done * width
            conn.execute(statement, values[start : start + step])
            done += size


def _apply_run_event(conn: sqlite3.Connection, write: TableWrite, row: rows.Row) -> None:
    if write.unique_columns:
        key = [row[k] for k in write.key]
        row = write_plan.taken_unique_values(
            write, row, lambda column, value: conn.execute(taken_sql(write, column), [value, *key]).fetchone()
            is not None)  # the name is another run's: keep this run's end, without the name
    conn.execute(_sql(write), write.values(row))


def write_records(conn: sqlite3.Connection, records: Sequence[ProvRecord]) -> None:
    """Write records inside the caller's transaction; raises sqlite3 errors for the caller to classify."""
    batch = write_plan.collect(records, fast=_FAST_ROWS)
    for write, row in batch.run_events:
        _apply_run_event(conn, write, row)
    for write, values in batch.loads.items():
        if not values:
            continue
        if write.append_only:  # multi-row statements: per row, the first copy of a key wins as row by row
            _insert_many(conn, write, list(itertools.chain.from_iterable(values)))
        else:
            conn.executemany(_sql(write), values)
    counters = batch.counters()
    if counters:
        conn.executemany(_sql(write_plan.RUN_COUNTERS), map(write_plan.RUN_COUNTERS.values, counters))
