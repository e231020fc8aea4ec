"""The `run` rows a batch leaves behind, computed in Python from the rows the store holds now.

Why not in SQL: MonetDB 11.45 (Sep2022-SP3) crashes (SIGSEGV in the relational optimizer) when a statement
reads a VARCHAR column that an earlier join-driven UPDATE or MERGE of the same open transaction changed (see
README "MonetDB", tests/store/test_monetdb_crash.py). The SQLite sink applies a run start, a run end and the epoch
summaries as three upserts of one row; doing that in MonetDB means a second MERGE reading what the first one
wrote: exactly the crash. So the MonetDB sink reads the batch's runs first, folds every record into them here,
and writes each changed row with one MERGE: one statement per table per transaction, nothing read after it.

The rules are the write plans of pinnprov/store/write_plan.py (RUN_START, RUN_END, RUN_COUNTERS), the same
declarations the SQLite sink renders as upserts, applied here in Python record by record in batch order, then the
epoch counters, as SQLite does; tests/store/test_write_plan.py drives both stores through the same record
sequences, tests/store/test_monetdb_replay.py against the real servers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pinnprov.store.schema import TABLES_BY_NAME
from pinnprov.store.write_plan import RUN_COUNTERS, TableWrite, blank_row, taken_unique_values

Row = dict[str, Any]

RUN_COLUMNS: tuple[str, ...] = tuple(column.name for column in TABLES_BY_NAME["run"].columns)
COUNTER_COLUMNS: tuple[str, ...] = RUN_COUNTERS.updates
"""The columns epochs change; a batch that changes only these writes a narrow MERGE."""


def _name_holder(rows: Mapping[str, Row], run_id: str) -> Any:
    return lambda column, value: any(row[column] == value and other != run_id for other, row in rows.items())


def apply(rows: dict[str, Row], write: TableWrite, incoming: Mapping[str, Any]) -> None:
    """One `run` write (a start, an end, the counters) over the rows, as the SQLite upsert would leave them."""
    run_id = incoming["run_id"]
    if write.unique_columns:
        incoming = taken_unique_values(write, incoming, _name_holder(rows, run_id))
    rows[run_id] = write.merge(rows.get(run_id), incoming)


def fold(current: Mapping[str, Row], events: Iterable[tuple[TableWrite, Mapping[str, Any]]],
         counters: Iterable[Mapping[str, Any]]) -> dict[str, Row]:
    """Every run row after the batch: `current` (as stored) with the starts and ends applied in order, then the
    epoch counters, as the SQLite sink does (its counters are written at the end of each batch)."""
    rows = {run_id: dict(row) for run_id, row in current.items()}
    for write, event in events:
        apply(rows, write, event)
    for counter in counters:
        apply(rows, RUN_COUNTERS, counter)
    return rows


def changed_rows(current: Mapping[str, Row], final: Mapping[str, Row]) -> tuple[list[Row], bool]:
    """The rows to write (new or different), and whether they differ only in COUNTER_COLUMNS (new rows
    count as such when nothing but the counters is set)."""
    rows: list[Row] = []
    counters_only = True
    for run_id, row in final.items():
        before = current.get(run_id) or blank_row("run") | {"run_id": run_id}
        differing = {c for c in RUN_COLUMNS if row[c] != before[c]}
        if run_id not in current:  # a new row is always written; it is "counters only" if nothing else is set
            differing |= {"last_epoch"}
        if not differing:
            continue
        rows.append(row)
        counters_only = counters_only and differing <= set(COUNTER_COLUMNS)
    return rows, counters_only
