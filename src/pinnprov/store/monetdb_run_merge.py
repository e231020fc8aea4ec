"""The `run` rows a batch leaves behind, computed in Python from the rows the store holds now.

Why not in SQL: MonetDB 11.45 (Sep2022-SP3) crashes (SIGSEGV in the relational optimizer) when a statement
reads a VARCHAR column that an earlier join-driven UPDATE or MERGE of the same open transaction changed (see
README "MonetDB", tests/test_monetdb_crash.py). The SQLite sink applies a run start, a run end and the epoch
summaries as three upserts of one row; doing that in MonetDB means a second MERGE reading what the first one
wrote: exactly the crash. So the MonetDB sink reads the batch's runs first, folds every record into them here,
and writes each changed row with one MERGE: one statement per table per transaction, nothing read after it.

The rules are those of pinnprov/store/sqlite_writes.py, record by record in batch order, so both stores end
up with the same rows (tests/test_monetdb_replay.py checks it against the real SQLite sink):
- a start fills identity and hyperparameter columns but never un-ends a run (status stays if set);
- an end sets status/ended_at/epochs/error/end_span_id; the identity it repeats never overwrites a start's,
  and a name another run holds is dropped (the end is kept, without the name);
- epochs create a bare run row if none exists, raise `last_epoch` and lower `lr_min` (max/min over old and new).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pinnprov.store.schema import TABLES_BY_NAME

Row = dict[str, Any]

RUN_COLUMNS: tuple[str, ...] = tuple(column.name for column in TABLES_BY_NAME["run"].columns)
_END_ONLY = frozenset({"ended_at", "epochs", "error", "end_span_id", "last_epoch", "lr_min"})
RUN_START_COLUMNS: tuple[str, ...] = tuple(c for c in RUN_COLUMNS if c not in _END_ONLY)
RUN_END_COLUMNS: tuple[str, ...] = ("run_id", "run_name", "experiment", "status", "started_at", "ended_at",
                                    "epochs", "error", "end_span_id")
COUNTER_COLUMNS: tuple[str, ...] = ("last_epoch", "lr_min")
"""The columns epochs change; a batch that changes only these writes a narrow MERGE."""


def _blank(run_id: str) -> Row:
    return dict.fromkeys(RUN_COLUMNS) | {"run_id": run_id}


def _name_taken(rows: Mapping[str, Row], name: str, run_id: str) -> bool:
    return any(row["run_name"] == name and other != run_id for other, row in rows.items())


def apply_start(rows: dict[str, Row], start: Mapping[str, Any]) -> None:
    run_id = start["run_id"]
    row = rows.get(run_id)
    if row is None:
        rows[run_id] = _blank(run_id) | {c: start.get(c) for c in RUN_START_COLUMNS}
        return
    for column in RUN_START_COLUMNS:
        if column not in ("run_id", "status"):
            row[column] = start.get(column)
    if row["status"] is None:
        row["status"] = start.get("status")


def apply_end(rows: dict[str, Row], end: Mapping[str, Any]) -> None:
    run_id = end["run_id"]
    name = end.get("run_name")
    if name is not None and _name_taken(rows, name, run_id):
        name = None
    row = rows.get(run_id)
    if row is None:
        rows[run_id] = _blank(run_id) | {c: end.get(c) for c in RUN_END_COLUMNS} | {"run_name": name}
        return
    for column in ("status", "ended_at", "epochs", "error", "end_span_id"):
        row[column] = end.get(column)
    if row["run_name"] is None:
        row["run_name"] = name
    if row["experiment"] is None or row["experiment"] == "":
        row["experiment"] = end.get("experiment")
    if row["started_at"] is None:
        row["started_at"] = end.get("started_at")


def apply_epochs(rows: dict[str, Row], run_id: str, top_epoch: int, lowest_lr: float | None) -> None:
    row = rows.setdefault(run_id, _blank(run_id))
    if row["last_epoch"] is None or row["last_epoch"] < top_epoch:
        row["last_epoch"] = top_epoch
    if lowest_lr is not None and (row["lr_min"] is None or lowest_lr < row["lr_min"]):
        row["lr_min"] = lowest_lr


def fold(current: Mapping[str, Row], events: Iterable[tuple[str, Mapping[str, Any]]],
         summaries: Mapping[str, tuple[int, float | None]]) -> dict[str, Row]:
    """Every run row after the batch: `current` (as stored) with the starts and ends applied in order, then the
    epoch summaries, as the SQLite sink does (its epochs are written at the end of each batch)."""
    rows = {run_id: dict(row) for run_id, row in current.items()}
    for kind, event in events:
        (apply_start if kind == "start" else apply_end)(rows, event)
    for run_id, (top, low) in summaries.items():
        apply_epochs(rows, run_id, top, low)
    return rows


def changed_rows(current: Mapping[str, Row], final: Mapping[str, Row]) -> tuple[list[Row], bool]:
    """The rows to write (new or different), and whether they differ only in COUNTER_COLUMNS (new rows
    count as such when nothing but the counters is set)."""
    rows: list[Row] = []
    counters_only = True
    for run_id, row in final.items():
        before = current.get(run_id) or _blank(run_id)
        differing = {c for c in RUN_COLUMNS if row[c] != before[c]}
        if run_id not in current:  # a new row is always written; it is "counters only" if nothing else is set
            differing |= {"last_epoch"}
        if not differing:
            continue
        rows.append(row)
        counters_only = counters_only and differing <= set(COUNTER_COLUMNS)
    return rows, counters_only
