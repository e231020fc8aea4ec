"""The write plans (pinnprov/store/write_plan.py): one declaration of the store's rules, two renderings that agree.

- every merge rule means the same as SQLite SQL and as the Python MonetDB folds with;
- conflict keys are the schema's primary keys, and every record type has exactly one plan;
- the real SQLite sink and a model of the MonetDB sink (its real `collect`/`plan`/fold, the staged rows applied to
  dicts as its INSERT ... WHERE NOT EXISTS and MERGE statements would) end with the same rows after the same
  record sequences: duplicates, replays, out of order, a start after the end, name conflicts, NaN learning rates.
  tests/store/test_monetdb_replay.py runs the same scenarios against the real MonetDB.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prov_builders import dump
from test_monetdb_replay import _records, _stream

from pinnprov.store import monetdb_copy as mc
from pinnprov.store import sqlite_writes
from pinnprov.store import write_plan as wp
from pinnprov.store.records import (
    RECORD_TYPES,
    AdaptationRecord,
    AlertRecord,
    ByRecordType,
    EpochRecord,
    ProvRecord,
    RunEndRecord,
    RunStartRecord,
)
from pinnprov.store.schema import TABLES, TABLES_BY_NAME
from pinnprov.store.sink import ExportStatus
from pinnprov.store.sqlite_sink import SqliteSink

A, B, C = "a" * 32, "b" * 32, "c" * 32


# --- the rules --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", list(wp.Merge))
def test_each_merge_rule_means_the_same_in_sql_and_in_python(rule: wp.Merge) -> None:
    values: list[Any] = [None, "", "x", "y", 0, 3, -1.5, 2.25]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, c ANY)")
    expression = rule.sql("c", "t")
    sql = "INSERT INTO t (k, c) VALUES (?, ?) ON CONFLICT (k) DO " + (
        "NOTHING" if expression is None else f'UPDATE SET "c" = {expression}')
    pairs = [(s, i) for s, i in itertools.product(values, values)
             if rule not in (wp.Merge.MAX, wp.Merge.MIN) or not (isinstance(s, str) or isinstance(i, str))]
    for key, (stored, incoming) in enumerate(pairs):
        conn.execute("INSERT INTO t (k, c) VALUES (?, ?)", (key, stored))
        conn.execute(sql, (key, incoming))
        (got,) = conn.execute("SELECT c FROM t WHERE k = ?", (key,)).fetchone()
        assert got == rule.apply(stored, incoming), (rule, stored, incoming)
    numbers = [None, 3, None, -1, 7, None]
    assert rule.fold(numbers) == functools.reduce(rule.apply, numbers, None)


def test_conflict_keys_come_from_the_schema_and_every_record_type_has_one_plan() -> None:
    for record_type in RECORD_TYPES:
        blank = tuple.__new__(record_type, ()) if issubclass(record_type, tuple) else object.__new__(record_type)
        plan = wp.PLANS(blank)  # a NamedTuple record (metric points) is made through tuple.__new__
        for write, _ in plan.writes:
            table = TABLES_BY_NAME[write.table]
            assert write.key == table.primary_key
            assert f"ON CONFLICT ({', '.join(table.primary_key)})" in sqlite_writes.upsert_sql(write)
    for write in (*wp.LOADS, wp.RUN_COUNTERS):
        assert write.key == TABLES_BY_NAME[write.table].primary_key
    assert wp.RUN_END.unique_columns == ("run_name",) and wp.RUN_START.unique_columns == ()
    assert {c for c, rule in wp.RUN_START.rules.items() if rule is not wp.Merge.REPLACE} == {"status"}
    assert all(wp.Merge.KEEP is rule for write in (wp.EPOCHS, wp.ADAPTATIONS, wp.ALERTS)
               for rule in write.rules.values())
    assert sqlite_writes.upsert_sql(wp.EPOCHS).endswith("ON CONFLICT (run_id, epoch) DO NOTHING")
    assert {op.target for op in mc.OPERATIONS} == {write.table for write in (*wp.LOADS, wp.RUN_START)}


def test_the_one_dispatch_refuses_what_is_not_a_record_and_needs_every_type() -> None:
    with pytest.raises(TypeError, match="not a PROV record: str"):
        wp.PLANS("run")
    with pytest.raises(TypeError, match="missing"):
        ByRecordType({EpochRecord: 1})

    class LateEpoch(EpochRecord):
        pass

    assert wp.PLANS(object.__new__(LateEpoch)) is wp.PLANS(object.__new__(EpochRecord))


def test_a_write_refuses_columns_outside_its_table() -> None:
    with pytest.raises(ValueError, match="bad columns"):
        wp.TableWrite("bad", "run", {"no_such_column": wp.Merge.REPLACE})


# --- SQLite and MonetDB from the same records -----------------------------------------------------------------


class _Poison(Exception):
    pass


class MonetdbModel:
    """The MonetDB sink without a server: its real collect/read/plan, and each staged operation applied to dicts
    the way its statement does (append-only: the first copy of a key wins; MERGE: staged values replace)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t.name: {} for t in TABLES}

    def _write(self, records: Sequence[ProvRecord]) -> None:
        batch = wp.collect(records)
        ids, names = set(batch.run_ids()), set(batch.run_names())
        current = {key[0]: dict(row) for key, row in self.tables["run"].items()  # current_runs_sql
                   if key[0] in ids or row["run_name"] in names}
        tables = copy.deepcopy(self.tables)
        for op, rows in mc.plan(batch, current):
            target = tables[op.target]
            for row in op.as_dicts(rows):
                key = tuple(row[k] for k in op.key)
                if op.keep == "first":
                    target.setdefault(key, wp.blank_row(op.target) | row)
                else:
                    target[key] = (target.get(key) or wp.blank_row(op.target)) | row
        held = [row["run_name"] for row in tables["run"].values() if row["run_name"] is not None]
        if len(held) != len(set(held)):
            raise _Poison("UNIQUE constraint run.run_name")
        self.tables = tables

    def export(self, batch: Sequence[ProvRecord]) -> tuple[str, tuple[int, ...]]:
        try:
            self._write(batch)
            return ExportStatus.SUCCESS.value, ()
        except _Poison:
            rejected = []
            for index, record in enumerate(batch):
                try:
                    self._write([record])
                except _Poison:
                    rejected.append(index)
            return (ExportStatus.REJECTED if rejected else ExportStatus.SUCCESS).value, tuple(rejected)

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t.name: sorted((tuple(row[c.name] for c in t.columns) for row in self.tables[t.name].values()),
                               key=repr) for t in TABLES if t.name != "schema_version"}


def _start(run_id: str, name: str, experiment: str = "exp", at: float = 10.0) -> RunStartRecord:
    return RunStartRecord(run_id, f"s{run_id[:4]}{name[:3]}", name, experiment, at, {"optimizer": "adam", "lr": 1e-3},
                          host="h", resource={"service.name": "t"})


def _end(run_id: str, name: str = "", status: str = "completed", epochs: int = 3, experiment: str = "late",
         at: float = 20.0) -> RunEndRecord:
    return RunEndRecord(run_id, f"e{run_id[:4]}{status[:3]}", at, status, epochs, summary={"r2": 0.5, "bad": math.nan},
                        run_name=name, experiment=experiment, started_at=at - 11.0)


def _epoch(run_id: str, epoch: int, lr: float = 1e-3) -> EpochRecord:
    return EpochRecord(run_id, f"{epoch + 1:016x}", epoch, 100.0 + epoch, 100.5 + epoch, 0.5, 1.0 / (epoch + 1),
                       0.1, 0.2, 0.3, lr, {"x": float(epoch)} if epoch % 2 else {})


_ADAPT = AdaptationRecord(A, "ad1", 2, 50.0, "learning_rate", "0.001", "0.0005", "user:alice", "plateau")
_ALERT = AlertRecord(f"loss-high:{A}:2", "loss-high", A, 2, 51.0, "loss", 30.0, 20.0, "high")

SCENARIOS: dict[str, list[list[ProvRecord]]] = {
    "start after end: a start never un-ends a run": [
        [_end(A, "alpha"), _epoch(A, 4)], [_start(A, "alpha", experiment=""), _epoch(A, 1)]],
    "start and end in one batch, end first, then replayed": [
        [_end(A, "alpha", status="failed"), _start(A, "alpha")] * 2, [_start(A, "alpha")]],
    "an end names a run another run holds: the name is dropped": [
        [_start(A, "alpha")], [_end(B, "alpha"), _epoch(B, 0)], [_start(B, "beta")]],
    "a start names a run another run holds: the start is refused": [
        [_start(A, "alpha"), _epoch(A, 0)], [_start(B, "alpha"), _epoch(B, 0), _end(B, "alpha")]],
    "two runs claim one name in one batch": [
        [_end(B, "alpha"), _start(A, "alpha"), _end(A, "alpha"), _start(C, "alpha")]],
    "duplicates, out of order and counters (max epoch, min finite lr)": [
        [_epoch(A, 5, 1e-3), _epoch(A, 2, 1e-5), _epoch(A, 5, 1e-3), _epoch(A, 7, math.nan)],
        [_epoch(A, 3, 1e-6), _epoch(A, 1, math.inf)], [_start(A, "alpha")],
        [_epoch(A, 2, 1e-9), _ADAPT, _ADAPT, _ALERT], [_ALERT, _end(A, "alpha")]],
    "an empty experiment is filled by the end, a set one is kept": [
        [_start(A, "alpha", experiment=""), _end(A, experiment="late"), _start(B, "beta"), _end(B)],
        [_end(A, experiment="later")]],
    "ends repeated with other statuses: the last end wins": [
        [_end(A, "alpha", status="stopped")], [_end(A, "alpha", status="completed", epochs=9)]],
}


def _sqlite_run(path: Path, batches: Sequence[Sequence[ProvRecord]]) -> list[tuple[str, tuple[int, ...]]]:
    sink = SqliteSink(path)
    try:
        outcomes = []
        for batch in batches:
            result = sink.export(batch)
            outcomes.append((result.status.value, tuple(result.rejected)))
        return outcomes
    finally:
        sink.shutdown()


def _assert_same(tmp_path: Path, batches: Sequence[Sequence[ProvRecord]], what: str) -> dict[str, list[Any]]:
    expected = _sqlite_run(tmp_path / "sqlite.db", batches)
    model = MonetdbModel()
    got = [model.export(batch) for batch in batches]
    assert got == expected, what
    stored = dump(tmp_path / "sqlite.db")
    assert model.dump() == stored, what
    return stored


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sqlite_and_monetdb_merge_the_same_way(scenario: str, tmp_path: Path) -> None:
    stored = _assert_same(tmp_path, SCENARIOS[scenario], scenario)
    assert stored["run"], scenario


def test_the_scenarios_show_the_rules(tmp_path: Path) -> None:
    """What the rules mean, on the SQLite rows the MonetDB model was just shown to equal."""
    def runs(scenario: str) -> dict[str, dict[str, Any]]:
        path = tmp_path / f"{abs(hash(scenario))}.db"
        _sqlite_run(path, SCENARIOS[scenario])
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            return {row["run_id"]: dict(row) for row in conn.execute("SELECT * FROM run")}
        finally:
            conn.close()

    run = runs("start after end: a start never un-ends a run")[A]
    assert (run["status"], run["experiment"], run["last_epoch"]) == ("completed", "", 4)
    held = runs("an end names a run another run holds: the name is dropped")
    assert held[A]["run_name"] == "alpha" and held[B]["run_name"] == "beta" and held[B]["status"] == "completed"
    counters = runs("duplicates, out of order and counters (max epoch, min finite lr)")[A]
    assert (counters["last_epoch"], counters["lr_min"]) == (7, 1e-9)
    filled = runs("an empty experiment is filled by the end, a set one is kept")
    assert filled[A]["experiment"] == "late" and filled[B]["experiment"] == "exp"


@pytest.mark.parametrize("seed", range(12))
def test_random_streams_leave_the_same_rows(seed: int, tmp_path: Path) -> None:
    """The replay test's streams (tests/store/test_monetdb_replay.py), without a server: many more seeds."""
    rng = random.Random(seed)
    _assert_same(tmp_path, _stream(rng, _records(rng)), f"seed {seed}")
