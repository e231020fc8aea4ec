"""MonetDB bulk loading: COPY payloads, staging tables and the idempotent apply statements, as plain text.

No connection here, so every statement and byte the MonetDB sink sends is unit-tested without a server.
How a batch is written (one transaction, see pinnprov/store/monetdb_sink.py):
    1. read the batch's `run` rows (CURRENT_RUNS_SQL), the transaction's only read and its first statement;
    2. fold the records into rows per table in Python with the write plans SQLite renders as upserts
       (pinnprov/store/write_plan.py: the same rows, keys and merge rules; pinnprov/store/monetdb_run_merge.py for
       `run`), de-duplicated by key, because MERGE refuses two source rows for one target row;
    3. per table, `COPY n RECORDS INTO tmp.<stage> FROM '<name>' ON CLIENT ...` (pymonetdb streams the CSV
       payload from memory; staging tables are LOCAL TEMPORARY, ON COMMIT DELETE ROWS; a load of a few rows is
       one multi-row INSERT instead, COPY's fixed cost being ~20 ms), then exactly one
       statement writes the table: INSERT ... SELECT ... WHERE NOT EXISTS for append-only facts (epochs,
       adaptations, alerts: the first copy of a key wins, as SQLite's ON CONFLICT DO NOTHING) and MERGE INTO
       for upserts (hyperparameters, resources, summaries: the last wins, as ON CONFLICT DO UPDATE; `run`: the
       folded rows replace the stored ones).
One statement per table and no read after it is what keeps MonetDB 11.45 alive (monetdb_run_merge.py says why);
`test_every_table_is_written_once_and_never_read_after` checks the plan keeps to it.
CSV dialect: ',' between fields, '\\n' between records, strings always in '"' with backslash escapes
(COPY's default ESCAPE mode), NULL as the unquoted word NULL; numbers in Python's shortest exact form.
Not `NULL AS ''`: MonetDB 11.45 then loads a quoted empty string ("") as NULL too, and '' must stay ''
(a run's empty `error`, as SQLite stores it); a quoted "NULL" is the string NULL, checked live.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pinnprov.store import write_plan as wp
from pinnprov.store.dialects import MONETDB
from pinnprov.store.monetdb_run_merge import COUNTER_COLUMNS, RUN_COLUMNS, Row, changed_rows, fold
from pinnprov.store.schema import TABLES_BY_NAME
from pinnprov.store.write_plan import Batch, Merge, TableWrite
from pinnprov.store.write_plan import collect as collect  # the sink's and tests' entry

q = MONETDB.quote
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": ""})


def encode_field(value: object) -> str:
    """One CSV field: NULL unquoted, strings quoted and escaped, numbers exact."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "NULL"  # rows.py already made non-finite values NULL
    return '"' + str(value).translate(_ESCAPES) + '"'


def sql_literal(value: Any) -> str:
    """A value as a MonetDB SQL literal, escaped as pymonetdb escapes parameters; NUL dropped as in COPY."""
    from pymonetdb.sql.monetize import convert

    if isinstance(value, float):
        # An exponent makes it an approximate-numeric literal that MonetDB reads with strtod (exact); without
        # one it is a DECIMAL, and 1700000003.2999995 came back as 1700000003.2999997.
        text = repr(value)
        return ("NULL" if not math.isfinite(value) else text if "e" in text or "E" in text else text + "e0")
    if isinstance(value, str):
        value = value.replace("\x00", "")
    return str(convert(value))  # type: ignore[no-untyped-call]  # pymonetdb has no type hints


COPY_MIN_FIELDS = 2048
"""Loads of more fields (rows x columns) than this go through COPY, smaller ones through one INSERT."""


Values = tuple[Any, ...]
"""One staged row: its values in the operation's column order (tuples: a 32k-epoch batch as dicts cost a
third more CPU in the collector, which shares two cores with MonetDB)."""


def _encode_column(values: Sequence[Any], logical: str) -> list[str]:
    """encode_field over one column, with the common cases (no NULLs, one Python type) done in bulk: a 32k-epoch
    batch went from ~250 ms to ~60 ms of collector CPU this way."""
    if logical in ("double", "time") and all(type(value) is float for value in values):
        return list(map(repr, values))  # finite: rows.py made NaN/inf NULL
    if logical in ("integer", "bigint") and all(type(value) is int for value in values):
        return list(map(str, values))
    if logical in ("string", "clob") and all(type(value) is str for value in values):
        return ['"' + value.translate(_ESCAPES) + '"' for value in values]
    return list(map(encode_field, values))


def copy_payload(rows: Sequence[Values], types: Sequence[str] = ()) -> bytes:
    """The CSV payload of `rows`; `types` (the schema's logical type per column) selects the bulk encoders."""
    if not rows:
        return b""
    columns = list(zip(*rows, strict=True))
    encoded = [_encode_column(column, logical) for column, logical in zip(columns, types or [""] * len(columns),
                                                                         strict=True)]
    return ("\n".join(map(",".join, zip(*encoded, strict=True))) + "\n").encode()


@dataclass(frozen=True)
class Operation:
    """Load rows of one target table through one staging table, then write the table with `apply_sql`."""

    name: str  # staging table name (in schema tmp) and upload file name
    target: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    apply_sql: str
    keep: str = "first"  # which duplicate (by key) within a batch wins: first (insert-only) or last (upsert)

    @classmethod
    def of(cls, name: str, write: TableWrite) -> Operation:
        """The staging operation of a write plan: INSERT ... WHERE NOT EXISTS when every column is KEEP (the first
        copy of a key wins), MERGE when every column is REPLACE (the last wins). MonetDB statements take only the
        staged values, so other rules are applied in Python first (`run`: monetdb_run_merge.py)."""
        if write.append_only:
            sql, keep = insert_missing(name, write.table, write.columns, write.key), "first"
        elif all(write.rules[c] is Merge.REPLACE for c in write.updates):
            sql, keep = upsert(name, write.table, write.columns, write.key), "last"
        else:
            raise ValueError(f"{name}: MonetDB stages only all-KEEP or all-REPLACE writes; fold the others first")
        return cls(name, write.table, write.columns, write.key, sql, keep)

    def stage_ddl(self) -> str:
        table = TABLES_BY_NAME[self.target]
        types = {c.name: MONETDB.type_of(c.type, c.length) for c in table.columns}
        cols = ", ".join(f"{q(c)} {types[c]}" for c in self.columns)
        return f"CREATE LOCAL TEMPORARY TABLE {self.name} ({cols}) ON COMMIT DELETE ROWS"

    def copy_sql(self, count: int) -> str:
        cols = ", ".join(q(c) for c in self.columns)
        return (f"COPY {count} RECORDS INTO tmp.{self.name} ({cols}) FROM '{self.name}' ON CLIENT "
                "USING DELIMITERS ',', E'\\n', '\"' NULL AS 'NULL'")

    @property
    def types(self) -> tuple[str, ...]:
        """The schema's logical type of each column (pinnprov/store/schema.py)."""
        table = TABLES_BY_NAME[self.target]
        return tuple(table.column(c).type for c in self.columns)

    def payload(self, rows: Sequence[Values]) -> bytes:
        return copy_payload(rows, self.types)

    def insert_sql(self, rows: Sequence[Values]) -> str:
        """The same load as COPY, as one multi-row INSERT of literals: for small loads, where COPY's fixed cost
        (about 20 ms per COPY ... ON CLIENT on 11.45, measured) dominates; COPY wins from ~500 epoch rows."""
        cols = ", ".join(q(c) for c in self.columns)
        values = ", ".join("(" + ", ".join(map(sql_literal, row)) + ")" for row in rows)
        return f"INSERT INTO tmp.{self.name} ({cols}) VALUES {values}"

    def use_copy(self, rows: int) -> bool:
        return rows * len(self.columns) > COPY_MIN_FIELDS

    def values(self, rows: Iterable[Mapping[str, Any] | Values]) -> list[Values]:
        """Rows in this operation's column order (dict rows are converted, tuples taken as they are)."""
        return [row if isinstance(row, tuple) else tuple(row.get(c) for c in self.columns) for row in rows]

    def dedupe(self, rows: Sequence[Values]) -> list[Values]:
        positions = [self.columns.index(k) for k in self.key]
        chosen: dict[tuple[Any, ...], Values] = {}
        for row in rows:
            key = tuple(row[i] for i in positions)
            if self.keep == "last" or key not in chosen:
                chosen[key] = row
        return list(chosen.values())

    def as_dicts(self, rows: Iterable[Values]) -> list[dict[str, Any]]:
        """For reading a plan (tests, debugging)."""
        return [dict(zip(self.columns, row, strict=True)) for row in rows]


def _match(key: Sequence[str]) -> str:
    return " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)


def insert_missing(stage: str, target: str, columns: Sequence[str], key: Sequence[str]) -> str:
    cols = ", ".join(q(c) for c in columns)
    picked = ", ".join(f"s.{q(c)}" for c in columns)
    return (f"INSERT INTO {q(target)} ({cols}) SELECT {picked} FROM tmp.{stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {q(target)} t WHERE {_match(key)})")


def upsert(stage: str, target: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """MERGE: a matched row takes the staged values of every non-key column, an unmatched one is inserted."""
    sets = ", ".join(f"{q(c)} = s.{q(c)}" for c in columns if c not in key)
    cols = ", ".join(q(c) for c in columns)
    values = ", ".join(f"s.{q(c)}" for c in columns)
    return (f"MERGE INTO {q(target)} t USING tmp.{stage} s ON {_match(key)} WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})")


# `run` is written by one of two statements after the fold: whole folded rows, or only the epoch counters (the
# common batch: epochs of runs that already exist), which rewrites two columns instead of thirty.
RUN = Operation.of("pp_run", TableWrite("run_folded", "run", dict.fromkeys(RUN_COLUMNS[1:], Merge.REPLACE)))
RUN_COUNTERS = Operation.of("pp_run_counters", TableWrite("run_counters_folded", "run",
                                                          dict.fromkeys(COUNTER_COLUMNS, Merge.REPLACE)))
_BULK: dict[TableWrite, Operation] = {write: Operation.of(f"pp_{write.name}", write) for write in wp.LOADS}
"""The staging operation of every bulk write plan, named after it."""
HYPERPARAMETERS = _BULK[wp.HYPERPARAMETERS]
RESOURCES = _BULK[wp.RESOURCES]
SUMMARIES = _BULK[wp.SUMMARIES]
EPOCHS = _BULK[wp.EPOCHS]
EXTRAS = _BULK[wp.EXTRAS]
ADAPTATIONS = _BULK[wp.ADAPTATIONS]
ALERTS = _BULK[wp.ALERTS]
OPERATIONS: tuple[Operation, ...] = (RUN, RUN_COUNTERS, *_BULK.values())
"""Every staging table the sink creates, in the order their statements run."""


def current_runs_sql(run_ids: int, names: int) -> str:
    """The transaction's one read: the batch's runs, and any run holding a name the batch uses (an end must not
    take it). pymonetdb parameters r0.., n0.. (values are escaped by the driver)."""
    where = f"run_id IN ({', '.join(f'%(r{i})s' for i in range(run_ids))})"
    if names:
        where += f" OR run_name IN ({', '.join(f'%(n{i})s' for i in range(names))})"
    return f"SELECT {', '.join(q(c) for c in RUN_COLUMNS)} FROM run WHERE {where}"


BatchRows = Batch
"""A batch of PROV records as rows per write plan, before the `run` fold (which needs the stored rows)."""


def read_params(batch: Batch) -> dict[str, Any]:
    """The parameters of `current_runs_sql` for the batch's runs and names."""
    params: dict[str, Any] = {f"r{i}": run_id for i, run_id in enumerate(batch.run_ids())}
    params.update({f"n{i}": name for i, name in enumerate(batch.run_names())})
    return params


def plan(batch: Batch, current: Mapping[str, Row]) -> list[tuple[Operation, list[Values]]]:
    """(operation, rows) in execution order, given the stored `run` rows; operations without rows are left out."""
    final = fold(current, batch.run_events, batch.counters())
    run_rows, counters_only = changed_rows(current, final)
    loads: dict[str, list[Any]] = {_BULK[write].name: values for write, values in batch.loads.items()}
    loads[RUN.name], loads[RUN_COUNTERS.name] = ([], run_rows) if counters_only else (run_rows, [])
    return [(op, op.dedupe(op.values(loads[op.name]))) for op in OPERATIONS if loads.get(op.name)]
