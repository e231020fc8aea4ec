"""The store's write rules, declared once: per PROV record type, which rows go to which table, under which key,
and how each column merges with a row the store already holds.

Both SQL stores write from these declarations:
- SQLite renders every `TableWrite` as `INSERT ... ON CONFLICT (<primary key>) DO UPDATE SET col = <rule>` (or
  `DO NOTHING` when every column keeps its stored value), see pinnprov/store/sqlite_writes.py;
- MonetDB applies the same rules in Python (`TableWrite.merge` / `dedupe`; the `run` fold of
  pinnprov/store/monetdb_run_merge.py) and writes the result with one statement per table per transaction, which is
  what keeps MonetDB 11.45 alive (see monetdb_run_merge.py), see pinnprov/store/monetdb_copy.py.
Conflict keys are the schema's primary keys (pinnprov/store/schema.py), never spelled again here.

The rules of `run` (a row three kinds of record write, in any order, any number of times):
- a start fills identity and hyperparameter columns but never un-ends a run (`status` is COALESCE: it stays if set);
- an end sets status/ended_at/epochs/error/end_span_id; the identity it repeats never overwrites a start's
  (COALESCE, and COALESCE_BLANK for `experiment`, which a start may have left ''), and a `run_name` another run
  holds is dropped (`yields_unique`: the end is kept, without the name);
- epochs create a bare run row if none exists, raise `last_epoch` (MAX) and lower `lr_min` (MIN).
Within a batch, `run` writes apply record by record in batch order, then the epochs' counters
(`Batch.run_events`, `Batch.counters`); every other table is loaded in bulk (`Batch.loads`).
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pinnprov.store import product_rows, rows
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
)
from pinnprov.store.schema import TABLES_BY_NAME

Row = dict[str, Any]
Values = tuple[Any, ...]
"""One row as a tuple in its write's column order (tuples, not dicts, on the bulk path: a 32k-epoch batch)."""


def _max(stored: Any, incoming: Any) -> Any:
    return incoming if incoming is not None and (stored is None or stored < incoming) else stored


def _min(stored: Any, incoming: Any) -> Any:
    return incoming if incoming is not None and (stored is None or incoming < stored) else stored


class Merge(enum.Enum):
    """How one column of an incoming row merges with the stored row of the same key."""

    KEEP = "keep"  # written when the row is new, never changed after: the first write wins
    REPLACE = "replace"  # the incoming value: the last write wins
    COALESCE = "coalesce"  # the stored value unless it is NULL
    COALESCE_BLANK = "coalesce_blank"  # the stored value unless it is NULL or ''
    MAX = "max"  # the larger; NULL loses
    MIN = "min"  # the smaller; NULL loses

    def apply(self, stored: Any, incoming: Any) -> Any:
        """The merged value, in Python (MonetDB's fold, in-batch duplicates)."""
        return _APPLY[self](stored, incoming)

    def sql(self, column: str, stored: str, incoming: str = "excluded") -> str | None:
        """The merged value as a SQL expression over `stored.column` and `incoming.column` (SQLite's upsert);
        None for KEEP (the column is left out of the SET list)."""
        old, new = f'{stored}."{column}"', f'{incoming}."{column}"'
        return {
            Merge.KEEP: None,
            Merge.REPLACE: new,
            Merge.COALESCE: f"COALESCE({old}, {new})",
            Merge.COALESCE_BLANK: f"CASE WHEN {old} IS NULL OR {old} = '' THEN {new} ELSE {old} END",
            Merge.MAX: f"CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL OR {old} < {new} THEN {new} "
                       f"ELSE {old} END",
            Merge.MIN: f"CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL OR {new} < {old} THEN {new} "
                       f"ELSE {old} END",
        }[self]

    def fold(self, values: Iterable[Any]) -> Any:
        """`apply` over a sequence of incoming values, starting from NULL (MAX/MIN with the builtins: the epoch
        counters of a 32k-epoch batch)."""
        if self is Merge.MAX or self is Merge.MIN:
            present = [value for value in values if value is not None]
            return (max if self is Merge.MAX else min)(present) if present else None
        return functools.reduce(self.apply, values, None)


_APPLY: dict[Merge, Callable[[Any, Any], Any]] = {
    Merge.KEEP: lambda stored, incoming: stored,
    Merge.REPLACE: lambda stored, incoming: incoming,
    Merge.COALESCE: lambda stored, incoming: incoming if stored is None else stored,
    Merge.COALESCE_BLANK: lambda stored, incoming: incoming if stored is None or stored == "" else stored,
    Merge.MAX: _max,
    Merge.MIN: _min,
}


@dataclass(frozen=True, eq=False)
class TableWrite:
    """Rows of one table, keyed by the table's primary key, each non-key column with its merge rule."""

    name: str
    table: str
    rules: Mapping[str, Merge]  # every non-key column this write carries
    yields_unique: bool = False  # a value of a unique column that another row holds is dropped (NULL), not refused

    def __post_init__(self) -> None:
        names = {column.name for column in TABLES_BY_NAME[self.table].columns}
        unknown = (set(self.rules) | set(self.key)) - names
        if unknown or set(self.rules) & set(self.key):
            raise ValueError(f"write {self.name}: bad columns {sorted(unknown or set(self.rules) & set(self.key))}")

    @property
    def key(self) -> tuple[str, ...]:
        return TABLES_BY_NAME[self.table].primary_key

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """The key and the ruled columns, in the schema's order."""
        carried = set(self.key) | set(self.rules)
        return tuple(column.name for column in TABLES_BY_NAME[self.table].columns if column.name in carried)

    @functools.cached_property
    def updates(self) -> tuple[str, ...]:
        """The columns a conflict may change (all but KEEP), in column order; empty for append-only facts."""
        return tuple(c for c in self.columns if c in self.rules and self.rules[c] is not Merge.KEEP)

    @property
    def append_only(self) -> bool:
        return not self.updates

    @functools.cached_property
    def unique_columns(self) -> tuple[str, ...]:
        """The single-column unique constraints this write yields on (see `yields_unique`)."""
        if not self.yields_unique:
            return ()
        uniques = TABLES_BY_NAME[self.table].unique
        return tuple(u[0] for u in uniques if len(u) == 1 and u[0] in self.rules)

    def values(self, row: Mapping[str, Any] | Values) -> Values:
        """A row in this write's column order (dicts are converted, tuples taken as they are)."""
        return row if isinstance(row, tuple) else tuple(row.get(c) for c in self.columns)

    def merge(self, stored: Mapping[str, Any] | None, incoming: Mapping[str, Any]) -> Row:
        """The stored row (a full row of the table, or None) after this write of `incoming`."""
        if stored is None:
            return blank_row(self.table) | {c: incoming.get(c) for c in self.columns}
        merged = dict(stored)
        for column in self.updates:
            merged[column] = self.rules[column].apply(stored[column], incoming.get(column))
        return merged


def blank_row(table: str) -> Row:
    return dict.fromkeys(column.name for column in TABLES_BY_NAME[table].columns)


def _all(table: str, rule: Merge, *, but: Iterable[str] = ()) -> dict[str, Merge]:
    """`rule` for every non-key column of `table` except `but`."""
    skip = set(TABLES_BY_NAME[table].primary_key) | set(but)
    return {column.name: rule for column in TABLES_BY_NAME[table].columns if column.name not in skip}


_END_ONLY = ("ended_at", "epochs", "error", "end_span_id")
COUNTER_RULES = {"last_epoch": Merge.MAX, "lr_min": Merge.MIN}

RUN_START = TableWrite("run_start", "run", _all("run", Merge.REPLACE, but=(*_END_ONLY, *COUNTER_RULES))
                       | {"status": Merge.COALESCE})  # a start never un-ends a run
RUN_END = TableWrite("run_end", "run", {
    "run_name": Merge.COALESCE, "experiment": Merge.COALESCE_BLANK, "status": Merge.REPLACE,
    "started_at": Merge.COALESCE, **dict.fromkeys(_END_ONLY, Merge.REPLACE)}, yields_unique=True)
RUN_COUNTERS = TableWrite("run_counters", "run", COUNTER_RULES)
HYPERPARAMETERS = TableWrite("hyperparameter", "run_hyperparameter", _all("run_hyperparameter", Merge.REPLACE))
RESOURCES = TableWrite("resource", "run_resource", _all("run_resource", Merge.REPLACE))
SUMMARIES = TableWrite("summary", "run_summary", _all("run_summary", Merge.REPLACE))
EPOCHS = TableWrite("epoch", "epoch_metric", _all("epoch_metric", Merge.KEEP))
EXTRAS = TableWrite("epoch_extra", "epoch_extra", _all("epoch_extra", Merge.KEEP))
ADAPTATIONS = TableWrite("adaptation", "adaptation", _all("adaptation", Merge.KEEP))
ALERTS = TableWrite("alert", "alert", _all("alert", Merge.KEEP))
METRIC_RESOURCES = TableWrite("metric_resource", "metric_resource", _all("metric_resource", Merge.KEEP))
METRIC_POINTS = TableWrite("metric_point", "metric_point", _all("metric_point", Merge.KEEP))
METRIC_SCALARS = TableWrite("metric_scalar", "metric_point", {column.name: Merge.KEEP for column in
                            TABLES_BY_NAME["metric_point"].columns[1:TABLES_BY_NAME["metric_point"].columns.index(
                                TABLES_BY_NAME["metric_point"].column("value")) + 1]})
"""Gauge and sum points: the columns up to `value` only (the histogram columns stay NULL), half the values to bind."""
ARTIFACTS = TableWrite("artifact", "artifact", _all("artifact", Merge.KEEP))
SNAPSHOTS = TableWrite("model_snapshot", "model_snapshot", _all("model_snapshot", Merge.KEEP))
RUN_RELATIONS = TableWrite("run_relation", "run_relation", _all("run_relation", Merge.KEEP))

RUN_WRITES = (RUN_START, RUN_END)
"""Writes of `run` rows that apply record by record, in batch order (then the counters, once per batch)."""
LOADS = (HYPERPARAMETERS, RESOURCES, SUMMARIES, EPOCHS, EXTRAS, ADAPTATIONS, ALERTS, METRIC_RESOURCES, METRIC_POINTS,
         METRIC_SCALARS, ARTIFACTS, SNAPSHOTS, RUN_RELATIONS)
"""Writes loaded in bulk, in this order, after the run writes and before the counters."""

RowsOf = Callable[[Any], list[Row] | list[Values]]


@dataclass(frozen=True)
class RecordPlan:
    """What one record type writes: (table write, rows of a record) pairs; `counts_epochs` feeds RUN_COUNTERS."""

    writes: tuple[tuple[TableWrite, RowsOf], ...]
    counts_epochs: bool = False


def _one(build: Callable[[Any], Row]) -> RowsOf:
    return lambda record: [build(record)]


def _epoch_rows(record: EpochRecord) -> list[Values]:
    return [rows.epoch_values(record)]


_metric_resource_values: Callable[[MetricResourceRecord], Values] = operator.attrgetter(*METRIC_RESOURCES.columns)
_POINT_COLUMNS = len(METRIC_POINTS.columns)
_SCALAR_COLUMNS = len(METRIC_SCALARS.columns)
_HIST_COUNT = METRIC_POINTS.columns.index("hist_count")


def metric_point_values(record: MetricPointRecord) -> Values:
    """A metric point's row: the record's first fields, which are the table's columns in order (checked below)."""
    return record[:_POINT_COLUMNS]


PLANS: ByRecordType[RecordPlan] = ByRecordType({
    RunStartRecord: RecordPlan(((RUN_START, _one(rows.run_start_row)), (HYPERPARAMETERS, rows.hyperparameter_rows),
                                (RESOURCES, rows.resource_rows), (RUN_RELATIONS, product_rows.resume_relation_rows))),
    RunEndRecord: RecordPlan(((RUN_END, _one(rows.run_end_row)), (SUMMARIES, rows.summary_rows))),
    EpochRecord: RecordPlan(((EPOCHS, _epoch_rows), (EXTRAS, rows.epoch_extra_values)), counts_epochs=True),
    AdaptationRecord: RecordPlan(((ADAPTATIONS, _one(rows.adaptation_row)),)),
    AlertRecord: RecordPlan(((ALERTS, _one(rows.alert_row)),)),
    MetricResourceRecord: RecordPlan(((METRIC_RESOURCES, lambda record: [_metric_resource_values(record)]),)),
    MetricPointRecord: RecordPlan(((METRIC_POINTS, lambda record: [metric_point_values(record)]),)),
    ArtifactRecord: RecordPlan(((ARTIFACTS, _one(product_rows.artifact_row)),)),
    ModelSnapshotRecord: RecordPlan(((SNAPSHOTS, _one(product_rows.snapshot_row)),)),
})
"""The one dispatch over record types of both SQL stores."""

# The epoch hot path takes rows.epoch_values / epoch_extra_values tuples as they are: their order must be the
# tables' (both come from the schema; this fails at import if they ever drift apart).
if MetricPointRecord._fields[:_POINT_COLUMNS] != METRIC_POINTS.columns or METRIC_SCALARS.columns != \
        METRIC_POINTS.columns[:_SCALAR_COLUMNS]:
    raise ImportError("pinnprov.store.records.MetricPointRecord's fields differ from metric_point's column order")
if EPOCHS.columns != rows.EPOCH_VALUE_COLUMNS or EXTRAS.columns != ("run_id", "epoch", "name", "value"):
    raise ImportError("pinnprov.store.rows value order differs from the epoch tables' column order")
_LEARNING_RATE = EPOCHS.columns.index("learning_rate")


@dataclass
class Batch:
    """A batch of PROV records as rows per write, in record order."""

    run_events: list[tuple[TableWrite, Row]] = field(default_factory=list)  # RUN_START/RUN_END rows, in order
    loads: dict[TableWrite, list[Values]] = field(default_factory=lambda: {write: [] for write in LOADS})
    epoch_counts: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)  # run -> (epoch, lr)

    def counters(self) -> list[Row]:
        """One RUN_COUNTERS row per run with epochs in the batch: its rules folded over the batch's epochs (an
        epoch below 0 counts as -1)."""
        top, low = COUNTER_RULES["last_epoch"].fold, COUNTER_RULES["lr_min"].fold
        return [{"run_id": run_id, "last_epoch": max(-1, top(epoch for epoch, _ in counts)),
                 "lr_min": low(lr for _, lr in counts)} for run_id, counts in self.epoch_counts.items()]

    def run_ids(self) -> list[str]:
        return sorted({row["run_id"] for _, row in self.run_events} | set(self.epoch_counts))

    def run_names(self) -> list[str]:
        return sorted({row["run_name"] for _, row in self.run_events if row.get("run_name") is not None})


def _epoch_values_general(record: EpochRecord) -> Values:
    return EPOCHS.values(rows.epoch_row(record))


def _extra_values_general(record: EpochRecord) -> list[Values]:
    return [EXTRAS.values(extra) for extra in rows.epoch_extra_rows(record)]


def collect(records: Iterable[ProvRecord], *, fast: bool = True) -> Batch:
    """Every record's rows by write (`PLANS`); `fast=False` builds epoch rows through the dict builders (the
    same values; tests compare the two)."""
    batch = Batch()
    loads, counts = batch.loads, batch.epoch_counts
    epochs, extras, points, scalars = loads[EPOCHS], loads[EXTRAS], loads[METRIC_POINTS], loads[METRIC_SCALARS]
    epoch_values, extra_values = ((rows.epoch_values, rows.epoch_extra_values) if fast
                                  else (_epoch_values_general, _extra_values_general))
    for record in records:
        if type(record) is MetricPointRecord:  # the metrics hot path: gauges and sums bind half the columns
            if record[_HIST_COUNT] is None and fast:
                scalars.append(record[:_SCALAR_COLUMNS])
            else:
                points.append(metric_point_values(record))
            continue
        if type(record) is EpochRecord:  # the hot path: PLANS[EpochRecord] without the generic loop
            values = epoch_values(record)
            epochs.append(values)
            if record.extra:
                extras.extend(extra_values(record))
            count = (record.epoch, values[_LEARNING_RATE])
            runs = counts.get(record.run_id)
            if runs is None:
                counts[record.run_id] = [count]
            else:
                runs.append(count)
            continue
        plan = PLANS(record)
        for write, build in plan.writes:
            if write in RUN_WRITES:
                batch.run_events.extend((write, dict(row)) for row in build(record))
            else:
                loads[write].extend(map(write.values, build(record)))
        if plan.counts_epochs:  # an EpochRecord subclass
            assert isinstance(record, EpochRecord)
            counts.setdefault(record.run_id, []).append((record.epoch, rows.finite(record.learning_rate)))
    return batch


def taken_unique_values(write: TableWrite, row: Mapping[str, Any], holders: Callable[[str, Any], bool]) -> Row:
    """`row` with every unique value another row holds set to NULL (for writes that yield, see `yields_unique`);
    `holders(column, value)` says whether another row than `row`'s holds it."""
    dropped = {c: None for c in write.unique_columns if row.get(c) is not None and holders(c, row[c])}
    return {**row, **dropped} if dropped else dict(row)
