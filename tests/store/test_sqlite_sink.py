"""The SQLite sink on real files: idempotence, ordering, concurrency, readers in other processes, failures."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prov_builders import RunSpec, dump, epoch_attributes, request_for, run_id, sample_run, write_store

from pinnprov.collector.pipeline import Pipeline
from pinnprov.collector.translate import translate_traces
from pinnprov.store.records import EpochRecord, RunStartRecord
from pinnprov.store.schema import SchemaVersionError
from pinnprov.store.sink import SINKS, ExportStatus
from pinnprov.store.sqlite_sink import SqliteSink


def test_registered_by_name() -> None:
    assert SINKS.get("sqlite") is SqliteSink


def test_replaying_the_same_requests_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    requests = [request_for(sample_run(1)), request_for(sample_run(2, ended=False))]
    write_store(db, *requests)
    first = dump(db)
    assert len(first["epoch_metric"]) == 10 and len(first["run"]) == 2 and len(first["adaptation"]) == 2
    write_store(db, *requests, *reversed(requests))
    assert dump(db) == first


def test_out_of_order_delivery_builds_the_same_store(tmp_path: Path) -> None:
    """Run end before run start, epochs before both: the run row still ends up complete and correct."""
    records = translate_traces(request_for(sample_run(1))).records
    in_order, reversed_order = tmp_path / "a.db", tmp_path / "b.db"
    for path, batches in ((in_order, [records]), (reversed_order, [[r] for r in reversed(records)])):
        sink = SqliteSink(path)
        for batch in batches:
            assert sink.export(batch).ok
        sink.shutdown()
    assert dump(in_order) == dump(reversed_order)
    (run,) = dump(reversed_order)["run"]
    conn = sqlite3.connect(reversed_order)
    status, name, last_epoch, lr_min = conn.execute("SELECT status, run_name, last_epoch, lr_min FROM run").fetchone()
    assert (status, name, last_epoch) == ("completed", "run-001", 4)
    assert lr_min == pytest.approx(1e-3 * 0.99**4)


def test_concurrent_exports_from_threads_all_land(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "c.db")
    batches = [translate_traces(request_for(sample_run(n, epochs=20))).records for n in range(1, 13)]
    results: list = [None] * len(batches)

    def export(index: int) -> None:
        results[index] = sink.export(batches[index])

    threads = [threading.Thread(target=export, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    sink.shutdown()
    assert all(result is not None and result.ok for result in results)
    assert sum(result.written for result in results) == sum(len(batch) for batch in batches)
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT COUNT(*) FROM epoch_metric").fetchone()[0] == 12 * 20
    assert conn.execute("SELECT COUNT(*), MIN(last_epoch), MAX(last_epoch) FROM run").fetchone() == (12, 19, 19)


def test_another_process_reads_while_the_writer_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    sink = SqliteSink(db)
    assert sink.export(translate_traces(request_for(sample_run(1, epochs=3))).records).ok
    # A second writer connection holds an open write transaction with an uncommitted run.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO run (run_id, run_name) VALUES ('ff', 'uncommitted')")
    try:
        reader = subprocess.run(
            [
                sys.executable,
                "-m",
                "pinnprov",
                "query",
                "--store",
                str(db),
                "--format",
                "csv",
                "--sql",
                "SELECT run_name, last_epoch FROM run ORDER BY run_name",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.splitlines() == ["run_name,last_epoch", "run-001,2"]
    sink.shutdown()


def test_locked_store_is_retryable_then_replay_succeeds(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    sink = SqliteSink(db, busy_timeout_s=0.2)
    records = translate_traces(request_for(sample_run(1, epochs=2))).records
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = sink.export(records)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.status is ExportStatus.RETRYABLE and "locked" in result.detail
    assert sink.export(records).ok
    sink.shutdown()
    assert len(dump(db)["epoch_metric"]) == 2


def test_poison_records_are_isolated_and_the_rest_is_written(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    sink = SqliteSink(db)
    good = translate_traces(request_for(sample_run(1, epochs=3))).records
    # A different run claiming the same (unique) run name, and an epoch whose loss is text.
    clash = translate_traces(request_for(sample_run(2, epochs=0, name="run-001", ended=False))).records
    text_loss = EpochRecord(run_id(3), "00000000000000aa", 0, 1.0, 2.0, 1.0, "abc", 0.0, 0.0, 0.0, 1e-3)  # type: ignore[arg-type]
    batch = [*good, *clash, text_loss]
    result = sink.export(batch)
    sink.shutdown()
    assert result.status is ExportStatus.REJECTED
    assert sorted(result.rejected) == [len(good), len(batch) - 1]
    assert result.written == len(good)
    assert "UNIQUE" in result.detail
    tables = dump(db)
    assert len(tables["epoch_metric"]) == 3 and {row[0] for row in tables["run"]} == {run_id(1)}


def test_pipeline_reports_sink_rejections_as_rejected_spans(tmp_path: Path) -> None:
    pipeline = Pipeline([SqliteSink(tmp_path / "q.db")])
    assert pipeline.handle_traces(request_for(sample_run(1, epochs=1))).ok
    result = pipeline.handle_traces(request_for(sample_run(2, epochs=1, name="run-001")))
    pipeline.shutdown()
    assert result.status is ExportStatus.SUCCESS and result.rejected == 1 and "UNIQUE" in result.detail
    assert pipeline.counters.snapshot()["sink.sqlite.rejected"] == 1


def test_nonfinite_values_are_stored_as_null_with_a_marker(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    spec = RunSpec(
        run_id=run_id(4),
        run_name="diverged",
        epochs=[
            epoch_attributes(0, loss=1.0, bc=0.1, residual=0.2, data=0.3, lr=1e-3),
            epoch_attributes(1, loss=float("nan"), bc=float("inf"), residual=-float("inf"), data=0.3, lr=float("nan")),
        ],
    )
    write_store(db, request_for(spec))
    conn = sqlite3.connect(db)
    row = conn.execute(
        'SELECT loss, loss_bc, loss_residual, loss_data, learning_rate, nonfinite FROM epoch_metric WHERE "epoch" = 1'
    ).fetchone()
    assert row == (None, None, None, 0.3, None, "loss=nan,loss_bc=inf,loss_residual=-inf,learning_rate=nan")
    assert conn.execute("SELECT last_epoch, lr_min FROM run").fetchone() == (1, 1e-3)


def test_run_start_fields_and_hyperparameter_types(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_store(db, request_for(sample_run(1)))
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    run = conn.execute("SELECT * FROM run").fetchone()
    assert (run["optimizer"], run["activation"], run["lr_schedule"]) == ("adam", "tanh", "exponential_decay")
    assert (run["lr_initial"], run["lr_decay_rate"], run["lr_decay_steps"], run["seed"]) == (1e-3, 0.99, 1000, 1337)
    assert (run["user_name"], run["process_pid"], run["device"], run["tensorflow_version"]) == (
        "alice",
        4242,
        "CPU:0",
        "2.21.0",
    )
    assert (run["dataset_name"], run["dataset_picks"], run["status"], run["epochs"]) == (
        "crosshole",
        100,
        "completed",
        5,
    )
    hp = {r["name"]: (r["value"], r["value_type"]) for r in conn.execute("SELECT * FROM run_hyperparameter")}
    assert (
        hp["use_bias"] == ("true", "bool") and hp["lr.initial"] == ("0.001", "float") and hp["seed"] == ("1337", "int")
    )
    assert [tuple(r) for r in conn.execute("SELECT name, value FROM run_summary")] == [("r2", 0.5)]
    extras = conn.execute('SELECT name, value FROM epoch_extra WHERE "epoch" = 3').fetchall()
    assert [tuple(r) for r in extras] == [("data_rms_s", 1e-5 * 3)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    SqliteSink(db).shutdown()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        SqliteSink(db)


def test_lifecycle(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "z.db")
    assert sink.export([]).ok and sink.force_flush(5.0)
    sink.shutdown()
    sink.shutdown()  # idempotent
    start = RunStartRecord(run_id(1), "01" * 8, "x", "e", 1.0, {})
    assert sink.export([start]).status is ExportStatus.RETRYABLE


def test_unknown_run_start_type_is_poison_not_a_crash(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "t.db")
    result = sink.export([object()])  # type: ignore[list-item]
    sink.shutdown()
    assert result.status is ExportStatus.REJECTED and list(result.rejected) == [0]


def test_steering_commands_through_the_store_api_while_the_sink_writes(tmp_path: Path) -> None:
    from pinnprov.store.access import acknowledge_command, insert_command, list_commands, open_store, pending_commands

    db = tmp_path / "steer.db"
    sink = SqliteSink(db)
    writer = threading.Thread(
        target=lambda: [sink.export(translate_traces(request_for(sample_run(n, epochs=30))).records) for n in range(8)]
    )
    writer.start()
    with open_store(f"sqlite:///{db}", read_only=False) as store:
        for i in range(20):
            assert insert_command(
                store,
                command_id=f"c{i:02d}",
                run_id=run_id(1),
                kind="set_lr",
                value=1e-4 * (i + 1),
                agent="user:alice",
                reason="test",
                created_at=100.0 + i,
            )
        assert not insert_command(store, command_id="c00", run_id=run_id(1), kind="stop")  # idempotent by id
        assert [c.command_id for c in pending_commands(store, run_id(1))] == [f"c{i:02d}" for i in range(20)]
        assert acknowledge_command(store, "c03", applied=True, detail="lr 4e-4", at=200.0)
        assert acknowledge_command(store, "c04", applied=False, detail="too large")
        assert not acknowledge_command(store, "c03", applied=False)  # only pending commands change
        assert not acknowledge_command(store, "unknown", applied=True)
        (applied,) = list_commands(store, run_id(1), state="applied")
        assert (applied.command_id, applied.value, applied.acked_at, applied.detail) == ("c03", 4e-4, 200.0, "lr 4e-4")
        assert len(pending_commands(store, run_id(1))) == 18 and pending_commands(store, run_id(2)) == []
    writer.join(timeout=120)
    sink.shutdown()
    with open_store(str(db)) as reader, pytest.raises(ValueError, match="read-only"):  # read-only: no writes
        insert_command(reader, command_id="x", run_id=run_id(1), kind="stop")
    assert len(dump(db)["epoch_metric"]) == 8 * 30
