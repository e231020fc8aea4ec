"""MonetDB sink: COPY payloads and statements checked without a server; live tests against the real MonetDB of
tests/monetdb_server.py (each in a schema of its own)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pymonetdb
import pytest
from prov_builders import request_for, sample_run

from pinnprov.collector.translate import translate_traces
from pinnprov.store import monetdb_copy as mc
from pinnprov.store.monetdb_run_merge import RUN_COLUMNS
from pinnprov.store.monetdb_sink import MonetdbSink, classify
from pinnprov.store.records import EpochRecord, RunEndRecord, RunStartRecord
from pinnprov.store.schema import TABLES_BY_NAME
from pinnprov.store.sink import ExportStatus


def _parse_monetdb_csv(payload: bytes) -> list[list[str | None]]:
    """MonetDB's COPY reader for our dialect: ',' fields, '\\n' records, '"' quotes with backslash escapes,
    the unquoted field NULL is NULL (NULL AS 'NULL'). Written from the documented format, independently of the
    encoder; test_live_copy_round_trips_through_the_server checks the server reads it the same way."""
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}
    records, fields, text = [], [], payload.decode()
    i = 0
    while i < len(text):
        if text[i] == '"':
            value, i = [], i + 1
            while text[i] != '"':
                if text[i] == "\\":
                    value.append(escapes[text[i + 1]])
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
            fields.append("".join(value))
            i += 1
        else:
            end = min(j for j in (text.find(",", i), text.find("\n", i)) if j >= 0)
            fields.append(None if text[i:end] == "NULL" else text[i:end])
            i = end
        if text[i] == "\n":
            records.append(fields)
            fields = []
        i += 1
    return records


def _plan(records: list, stored: dict) -> list[tuple[mc.Operation, list[dict]]]:
    return [(op, op.as_dicts(rows)) for op, rows in mc.plan(mc.collect(records), stored)]


def test_fields_are_encoded_exactly() -> None:
    assert [mc.encode_field(x) for x in (None, True, False, 7, -2**40, 1.5, 0.1, 1e-300)] == [
        "NULL", "true", "false", "7", "-1099511627776", "1.5", "0.1", "1e-300"]
    assert mc.encode_field(math.nan) == "NULL" and mc.encode_field(math.inf) == "NULL"
    assert mc.encode_field("") == '""' and mc.encode_field("NULL") == '"NULL"'  # strings are never NULL
    assert mc.encode_field('a"b\\c\nd\te\x00') == '"a\\"b\\\\c\\nd\\te"'


def test_payload_round_trips_through_the_documented_format() -> None:
    tricky = ["plain", "", 'quo"te', "back\\slash", "new\nline", "tab\tbed", "comma, inside", "NULL", "ünïcødé"]
    rows = [{"a": text, "b": n, "c": n / 3 if n else None} for n, text in enumerate(tricky)]
    parsed = _parse_monetdb_csv(mc.copy_payload(tuple(row.values()) for row in rows))
    assert [r[0] for r in parsed] == tricky
    assert [int(r[1]) for r in parsed] == list(range(len(tricky)))
    assert parsed[0][2] is None and [float(r[2]) for r in parsed[1:]] == [n / 3 for n in range(1, len(tricky))]


def test_a_batch_becomes_deduplicated_rows_per_operation() -> None:
    records = translate_traces(request_for(sample_run(1, epochs=5), sample_run(2, epochs=3))).records
    twice = records + [r for r in records if isinstance(r, EpochRecord)]  # a replay within one batch
    batch = mc.collect(twice)
    assert batch.run_ids() == [f"{1:032x}", f"{2:032x}"] and batch.run_names() == ["run-001", "run-002"]
    plan = {op.name: op.as_dicts(rows) for op, rows in mc.plan(batch, {})}
    assert len(plan["pp_epoch"]) == 8 and len(plan["pp_epoch_extra"]) == 8
    runs = {r["run_id"]: r for r in plan["pp_run"]}  # new runs: whole rows, start + end + epochs folded
    assert {r: (row["last_epoch"], row["lr_min"]) for r, row in runs.items()} == {
        f"{1:032x}": (4, pytest.approx(1e-3 * 0.99**4)), f"{2:032x}": (2, pytest.approx(1e-3 * 0.99**2))}
    assert [row["run_name"] for row in runs.values()] == ["run-001", "run-002"]
    assert {row["status"] for row in runs.values()} == {"completed"} and "pp_run_counters" not in plan
    assert len(plan["pp_hyperparameter"]) == 20 and len(plan["pp_adaptation"]) == 2
    epochs = _parse_monetdb_csv(mc.copy_payload(mc.EPOCHS.values(plan["pp_epoch"])))
    first = dict(zip(mc.EPOCHS.columns, epochs[0], strict=True))
    assert first["run_id"] == f"{1:032x}" and first["epoch"] == "0" and float(first["loss"]) == 101.0
    # The same batch again over the rows it left: nothing changes in `run`, so `run` is not written at all.
    stored = {r: dict(row) for r, row in runs.items()}
    assert {op.name for op, _ in mc.plan(mc.collect(twice), stored)} & {"pp_run", "pp_run_counters"} == set()


def test_epochs_of_known_runs_write_only_the_counters() -> None:
    records = translate_traces(request_for(sample_run(1, epochs=6))).records
    first = [r for r in records if not isinstance(r, EpochRecord) or r.epoch < 3]
    stored = {r["run_id"]: r for op, rows in _plan(first, {}) if op is mc.RUN for r in rows}
    later = [r for r in records if isinstance(r, EpochRecord) and r.epoch >= 3]
    (op, rows), *_ = _plan(later, stored)
    assert op is mc.RUN_COUNTERS and [(r["last_epoch"], r["lr_min"]) for r in rows] == [
        (5, pytest.approx(1e-3 * 0.99**5))]
    assert mc.RUN_COUNTERS.columns == ("run_id", "last_epoch", "lr_min")


def test_run_fold_follows_the_sqlite_rules() -> None:
    rid, other = "a" * 32, "b" * 32
    start = RunStartRecord(rid, "s1", "mine", "exp", 10.0, {"optimizer": "adam"})
    end = RunEndRecord(rid, "e1", 20.0, "completed", 7, run_name="taken", experiment="late", started_at=9.0)
    stored = {other: dict.fromkeys(RUN_COLUMNS) | {"run_id": other, "run_name": "taken"}}
    (op, rows), *_ = _plan([end, start], stored)  # the end first, then the start
    (row,) = rows
    assert op is mc.RUN and row["run_name"] == "mine" and row["status"] == "completed"  # a start never un-ends
    assert (row["experiment"], row["started_at"], row["optimizer"], row["epochs"]) == ("exp", 10.0, "adam", 7)
    (_, rows), *_ = _plan([end], stored)
    assert rows[0]["run_name"] is None and rows[0]["experiment"] == "late"  # another run's name is dropped


def test_every_table_is_written_once_and_never_read_after() -> None:
    """The rule that keeps MonetDB 11.45 alive (tests/test_monetdb_crash.py): per transaction, one statement
    writes a table and no later statement mentions it. The run read comes first; staging tables are exempt."""
    records = translate_traces(request_for(sample_run(1, epochs=5), sample_run(2, epochs=3))).records
    stored = {r["run_id"]: r for op, rows in _plan(records[:4], {}) if op is mc.RUN for r in rows}
    for current in ({}, stored):
        statements = [mc.current_runs_sql(2, 2)] + [op.apply_sql for op, _ in mc.plan(mc.collect(records), current)]
        written: set[str] = set()
        for statement in statements:
            mentioned = set(re.findall(r"(?:FROM|INTO|JOIN)\s+([a-z_]+)\b", statement))
            assert not mentioned & written, statement
            target = re.match(r"(?:INSERT|MERGE) INTO ([a-z_]+)", statement)
            if target:
                written.add(target.group(1))
        assert {"run", "epoch_metric", "run_hyperparameter"} <= written


def test_statements_use_the_schema_and_quote_monetdb_keywords() -> None:
    for op in mc.OPERATIONS:
        table = TABLES_BY_NAME[op.target]
        assert set(op.columns) <= {c.name for c in table.columns}, op.name
        assert op.stage_ddl().startswith(f"CREATE LOCAL TEMPORARY TABLE {op.name} (")
        copy = op.copy_sql(12)
        assert copy.startswith(f"COPY 12 RECORDS INTO tmp.{op.name} (") and f"FROM '{op.name}' ON CLIENT" in copy
        for statement in (op.stage_ddl(), copy, op.apply_sql, mc.current_runs_sql(3, 2)):
            for keyword in ("epoch", "name", "value", "seed"):  # MonetDB keywords must always be quoted
                assert not re.search(rf'(?<!["\w]){keyword}(?!["\w])', statement), (keyword, statement)
    assert "WHERE NOT EXISTS" in mc.EPOCHS.apply_sql and mc.EPOCHS.keep == "first"
    assert mc.RUN.apply_sql.startswith("MERGE INTO run t USING tmp.pp_run s ON t.run_id = s.run_id")
    assert mc.HYPERPARAMETERS.keep == "last" and 'UPDATE SET "value" = s."value"' in mc.HYPERPARAMETERS.apply_sql
    assert mc.current_runs_sql(2, 1).endswith("WHERE run_id IN (%(r0)s, %(r1)s) OR run_name IN (%(n0)s)")


def test_errors_are_classified_by_sqlstate() -> None:
    assert classify(pymonetdb.IntegrityError("40002!INSERT INTO: UNIQUE constraint 'run.u' violated")) == "poison"
    assert classify(pymonetdb.IntegrityError(
        "40000!COMMIT: transaction is aborted because of concurrency conflicts, will ROLLBACK instead")) == "conflict"
    assert classify(pymonetdb.OperationalError("22018!conversion of string 'x' to type dbl failed.")) == "poison"
    assert classify(pymonetdb.OperationalError("22001!value too long for type (var)char(256)")) == "poison"
    assert classify(pymonetdb.OperationalError("42S02!SELECT: no such table 'run'")) == "unavailable"
    assert classify(ConnectionRefusedError(111, "Connection refused")) == "unavailable"
    assert classify(pymonetdb.OperationalError("Server closed connection")) == "unavailable"


def test_closed_port_is_retryable_quickly_without_leaking_the_password() -> None:
    sink = MonetdbSink("monetdb://monetdb:hunter2@127.0.0.1:9/pinnprov", connect_timeout_s=2)
    records = translate_traces(request_for(sample_run(1, epochs=2))).records
    started = time.monotonic()
    result = sink.export(records)
    assert result.status is ExportStatus.RETRYABLE and time.monotonic() - started < 30
    assert "hunter2" not in result.detail and "***" in result.detail
    sink.shutdown()
    with pytest.raises(ValueError, match="expected monetdb://"):
        MonetdbSink("monetdb:///nodatabase")


# --- live ---------------------------------------------------------------------------------------------


def test_live_copy_round_trips_through_the_server(monetdb_url: str) -> None:
    """The payload as the server reads it: '' stays '' (NULL AS '' would make it NULL), "NULL" stays a string."""
    from pinnprov.store.monetdb_sink import _MemoryUploader
    from pinnprov.store.monetdb_store import parse_monetdb_url

    tricky = ["plain", "", 'quo"te', "back\\slash", "new\nline", "tab\tbed", "comma, inside", "NULL", "ünïcødé",
              "cr\rlf", "\\N", "'single'"]
    rows = [{"a": text, "b": n, "c": n / 3 if n else None} for n, text in enumerate(tricky)] + [
        {"a": None, "b": None, "c": 1e-300}, {"a": "t", "b": -1, "c": 1700000003.2999995}]  # 17 digits exact
    uploader = _MemoryUploader()
    uploader.files["rows"] = mc.copy_payload(tuple(row.values()) for row in rows)
    conn = pymonetdb.connect(autocommit=True, **parse_monetdb_url(monetdb_url))
    try:
        conn.set_uploader(uploader)
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE rt (a CLOB, b INTEGER, c DOUBLE)")
        cursor.execute(f"COPY {len(rows)} RECORDS INTO rt (a, b, c) FROM 'rows' ON CLIENT "
                       "USING DELIMITERS ',', E'\\n', '\"' NULL AS 'NULL'")
        with pytest.raises(pymonetdb.Error, match="no upload named"):  # nothing but the payloads we named
            cursor.execute("COPY INTO rt FROM '/etc/passwd' ON CLIENT")
        cursor.execute("SELECT a, b, c FROM rt ORDER BY b")
        got = cursor.fetchall()
        small = mc.Operation("rt", "run", ("a", "b", "c"), ("a",), "").insert_sql(  # the small-load path
            [tuple(row.values()) for row in rows])
        cursor.execute("DELETE FROM rt")
        cursor.execute(small.replace("INSERT INTO tmp.rt", "INSERT INTO rt", 1))
        cursor.execute("SELECT a, b, c FROM rt ORDER BY b")
        inserted = cursor.fetchall()
    finally:
        conn.close()
    assert sorted(got, key=repr) == sorted([(r["a"], r["b"], r["c"]) for r in rows], key=repr)
    assert sorted(inserted, key=repr) == sorted(got, key=repr)
    assert mc.EPOCHS.copy_sql(1).endswith("NULL AS 'NULL'")


def _rows(url: str, sql: str) -> list[tuple]:
    """Rows of a read, [] while the schema does not exist yet (the collector creates it at its first write)."""
    from pinnprov.store.access import open_store

    try:
        with open_store(url) as store:
            return store.execute(sql).rows
    except ValueError:
        return []


def test_live_idempotent_bulk_writes_and_the_read_path(monetdb_url: str) -> None:
    from pinnprov.store.access import open_store

    sink = MonetdbSink(monetdb_url)
    records = translate_traces(request_for(sample_run(1, epochs=50), sample_run(2, epochs=5))).records
    assert sink.export(records).ok
    assert sink.export(list(reversed(records))).ok  # a replay, end before start: no change (this killed 11.45)
    store = open_store(monetdb_url)
    got = store.execute('SELECT "epoch", loss FROM epoch_metric WHERE run_id = :r ORDER BY "epoch"',
                        {"r": f"{1:032x}"}).rows
    assert [row[0] for row in got] == list(range(50))
    assert [row[1] for row in got] == pytest.approx([100.0 / 2**e + 1 for e in range(50)])
    run = store.execute("SELECT run_name, status, last_epoch, optimizer FROM run WHERE run_id = :r",
                        {"r": f"{1:032x}"}).rows
    assert run == [("run-001", "completed", 49, "adam")]
    clash = translate_traces(request_for(sample_run(3, epochs=2, name="run-001"))).records
    result = sink.export(clash)
    assert result.status is ExportStatus.REJECTED and len(result.rejected) == 1
    assert store.execute("SELECT COUNT(*) FROM epoch_metric WHERE run_id = :r", {"r": f"{3:032x}"}).rows == [(2,)]
    store.close()
    sink.shutdown()


def test_live_collector_writes_monetdb(tmp_path: Path, monetdb_url: str) -> None:
    from collector_process import Collector, wait_for
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from prov_builders import build_spans

    collector = Collector(tmp_path, "--store", monetdb_url).start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True)
        exporter.export(build_spans(sample_run(4, epochs=20)))
        exporter.shutdown()
        wait_for(lambda: _rows(monetdb_url, "SELECT COUNT(*) FROM epoch_metric") == [(20,)], 60)
    finally:
        collector.stop()
