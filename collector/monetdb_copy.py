"""MonetDB bulk loading: COPY payloads, staging tables and the idempotent merge statements, as plain text.

No connection here, so every statement and byte the MonetDB sink sends is unit-tested without a server.
How a batch is written (one transaction, see collector/sinks/monetdb.py):
    1. rows per operation (collector/rows.py, shared with SQLite), de-duplicated by key in Python, because
       MERGE refuses two source rows for one target row;
    2. `COPY n RECORDS INTO tmp.<stage> FROM '<name>' ON CLIENT ...`: the client streams the CSV payload
       (pymonetdb's uploader); staging tables are LOCAL TEMPORARY, ON COMMIT DELETE ROWS;
    3. INSERT ... SELECT ... WHERE NOT EXISTS for append-only facts (epochs, adaptations, alerts) and
       MERGE INTO for upserts (run rows, hyperparameters, summaries), with the same semantics as the
       SQLite sink's ON CONFLICT clauses, so both stores end up with the same rows.
CSV dialect: ',' between fields, '\\n' between records, strings always in '"' with backslash escapes
(COPY's default ESCAPE mode), NULL as an empty unquoted field; numbers in Python's shortest exact form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.dialects import MONETDB
from collector.schema import TABLES_BY_NAME

q = MONETDB.quote
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": ""})


def encode_field(value: object) -> str:
    """One CSV field: '' is NULL, strings are quoted and escaped, numbers exact."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""  # rows.py already made non-finite values NULL
    return '"' + str(value).translate(_ESCAPES) + '"'


def copy_payload(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    lines = [",".join(encode_field(row.get(column)) for column in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode() if lines else b""


@dataclass(frozen=True)
class Operation:
    """Load rows of one target table through one staging table, then apply them with `apply_sql`."""

    name: str  # staging table name (in schema tmp) and upload file name
    target: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    apply_sql: str
    keep: str = "first"  # which duplicate (by key) within a batch wins: first (insert-only) or last (upsert)

    def stage_ddl(self) -> str:
        table = TABLES_BY_NAME[self.target]
        types = {c.name: MONETDB.type_of(c.type, c.length) for c in table.columns}
        types.update(_EXTRA_TYPES)
        cols = ", ".join(f"{q(c)} {types[c]}" for c in self.columns)
        return f"CREATE LOCAL TEMPORARY TABLE {self.name} ({cols}) ON COMMIT DELETE ROWS"

    def copy_sql(self, count: int) -> str:
        cols = ", ".join(q(c) for c in self.columns)
        return (f"COPY {count} RECORDS INTO tmp.{self.name} ({cols}) FROM '{self.name}' ON CLIENT "
                "USING DELIMITERS ',', E'\\n', '\"' NULL AS ''")

    def dedupe(self, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        chosen: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        for row in rows:
            key = tuple(row.get(k) for k in self.key)
            if self.keep == "last" or key not in chosen:
                chosen[key] = row
        return list(chosen.values())


_EXTRA_TYPES = {"top_epoch": "INTEGER", "low_lr": "DOUBLE"}  # columns of the run-summary stage only


def _cols(table: str) -> tuple[str, ...]:
    return tuple(column.name for column in TABLES_BY_NAME[table].columns)


def _match(key: Sequence[str]) -> str:
    return " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)


def insert_missing(stage: str, target: str, columns: Sequence[str], key: Sequence[str]) -> str:
    cols = ", ".join(q(c) for c in columns)
    picked = ", ".join(f"s.{q(c)}" for c in columns)
    return (f"INSERT INTO {q(target)} ({cols}) SELECT {picked} FROM tmp.{stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {q(target)} t WHERE {_match(key)})")


def merge(stage: str, target: str, columns: Sequence[str], key: Sequence[str], updates: Mapping[str, str],
          insert: bool = True) -> str:
    """MERGE: update the matched row with `updates` (column -> expression over t. and s.), else insert."""
    sets = ", ".join(f"{q(c)} = {expr}" for c, expr in updates.items())
    sql = f"MERGE INTO {q(target)} t USING tmp.{stage} s ON {_match(key)} WHEN MATCHED THEN UPDATE SET {sets}"
    if insert:
        cols = ", ".join(q(c) for c in columns)
        values = ", ".join(f"s.{q(c)}" for c in columns)
        sql += f" WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
    return sql


_RUN_ONLY_END = {"ended_at", "epochs", "error", "end_span_id", "last_epoch", "lr_min"}
RUN_START_COLUMNS = tuple(c for c in _cols("run") if c not in _RUN_ONLY_END)
RUN_END_COLUMNS = ("run_id", "run_name", "experiment", "status", "started_at", "ended_at", "epochs", "error",
                   "end_span_id")

# A start fills identity and hyperparameters but never un-ends a run; an end arriving first still creates
# the row, and the identity it repeats never overwrites what a start wrote (as collector/sinks/sqlite_writes).
_START_UPDATES = {c: f"s.{q(c)}" for c in RUN_START_COLUMNS if c not in ("run_id", "status")}
_START_UPDATES["status"] = "COALESCE(t.status, s.status)"
_END_UPDATES = {
    "status": "s.status", "ended_at": "s.ended_at", "epochs": "s.epochs", "error": "s.error",
    "end_span_id": "s.end_span_id", "run_name": "COALESCE(t.run_name, s.run_name)",
    "experiment": "CASE WHEN t.experiment IS NULL OR t.experiment = '' THEN s.experiment ELSE t.experiment END",
    "started_at": "COALESCE(t.started_at, s.started_at)",
}
_SUMMARY_UPDATES = {
    "last_epoch": "CASE WHEN t.last_epoch IS NULL OR t.last_epoch < s.top_epoch THEN s.top_epoch "
                  "ELSE t.last_epoch END",
    "lr_min": "CASE WHEN s.low_lr IS NULL THEN t.lr_min WHEN t.lr_min IS NULL OR s.low_lr < t.lr_min "
              "THEN s.low_lr ELSE t.lr_min END",
}


def _op(name: str, target: str, columns: Sequence[str], key: Sequence[str], apply_sql: str,
        keep: str = "first") -> Operation:
    return Operation(name, target, tuple(columns), tuple(key), apply_sql, keep)


def _upsert(name: str, target: str, columns: Sequence[str], key: Sequence[str],
            updates: Mapping[str, str]) -> Operation:
    return _op(name, target, columns, key, merge(name, target, columns, key, updates), "last")


def _append(name: str, target: str, key: Sequence[str]) -> Operation:
    return _op(name, target, _cols(target), key, insert_missing(name, target, _cols(target), key))


# In the order they run inside one transaction.
RUN_START = _upsert("pp_run_start", "run", RUN_START_COLUMNS, ("run_id",), _START_UPDATES)
RUN_END = _upsert("pp_run_end", "run", RUN_END_COLUMNS, ("run_id",), _END_UPDATES)
HYPERPARAMETERS = _upsert("pp_hyperparameter", "run_hyperparameter", _cols("run_hyperparameter"),
                          ("run_id", "name"), {"value": 's."value"', "value_type": "s.value_type"})
RESOURCES = _upsert("pp_resource", "run_resource", _cols("run_resource"), ("run_id", "name"), {"value": 's."value"'})
SUMMARIES = _upsert("pp_summary", "run_summary", _cols("run_summary"), ("run_id", "name"), {"value": 's."value"'})
EPOCHS = _append("pp_epoch", "epoch_metric", ("run_id", "epoch"))
EXTRAS = _append("pp_epoch_extra", "epoch_extra", ("run_id", "epoch", "name"))
RUN_STUBS = _op("pp_run_stub", "run", ("run_id",), ("run_id",), insert_missing("pp_run_stub", "run", ("run_id",),
                                                                                ("run_id",)))
# Runs exist by now (stubs above): only raise last_epoch and lower lr_min, as max/min over old and new.
RUN_SUMMARY = _op("pp_run_summary", "run", ("run_id", "top_epoch", "low_lr"), ("run_id",),
                  merge("pp_run_summary", "run", (), ("run_id",), _SUMMARY_UPDATES, insert=False))
ADAPTATIONS = _append("pp_adaptation", "adaptation", ("adaptation_id",))
ALERTS = _append("pp_alert", "alert", ("alert_id",))
OPERATIONS: tuple[Operation, ...] = (RUN_START, RUN_END, HYPERPARAMETERS, RESOURCES, SUMMARIES, EPOCHS, EXTRAS,
                                     RUN_STUBS, RUN_SUMMARY, ADAPTATIONS, ALERTS)


def batch_rows(records: Iterable[object]) -> list[tuple[Operation, list[Mapping[str, Any]]]]:
    """The rows each operation loads for a batch of PROV records, de-duplicated, in execution order."""
    from collector import rows
    from collector.records import AdaptationRecord, AlertRecord, EpochRecord, RunEndRecord, RunStartRecord

    loads: dict[str, list[Mapping[str, Any]]] = {op.name: [] for op in OPERATIONS}
    summaries: dict[str, tuple[int, float | None]] = {}  # run -> (highest epoch, lowest finite lr) in the batch
    for record in records:
        if isinstance(record, EpochRecord):
            row = rows.epoch_row(record)
            loads[EPOCHS.name].append(row)
            loads[EXTRAS.name].extend(rows.epoch_extra_rows(record))
            top, low = summaries.get(record.run_id, (-1, None))
            lr = row["learning_rate"]
            summaries[record.run_id] = (max(top, record.epoch), lr if low is None or (lr is not None and lr < low)
                                        else low)
        elif isinstance(record, RunStartRecord):
            loads[RUN_START.name].append(rows.run_start_row(record))
            loads[HYPERPARAMETERS.name].extend(rows.hyperparameter_rows(record))
            loads[RESOURCES.name].extend(rows.resource_rows(record))
        elif isinstance(record, RunEndRecord):
            loads[RUN_END.name].append(rows.run_end_row(record))
            loads[SUMMARIES.name].extend(rows.summary_rows(record))
        elif isinstance(record, AdaptationRecord):
            loads[ADAPTATIONS.name].append(rows.adaptation_row(record))
        elif isinstance(record, AlertRecord):
            loads[ALERTS.name].append(rows.alert_row(record))
        else:
            raise TypeError(f"not a PROV record: {type(record).__name__}")
    loads[RUN_STUBS.name] = [{"run_id": run_id} for run_id in summaries]
    loads[RUN_SUMMARY.name] = [{"run_id": r, "top_epoch": top, "low_lr": low} for r, (top, low) in summaries.items()]
    return [(op, op.dedupe(loads[op.name])) for op in OPERATIONS if loads[op.name]]
