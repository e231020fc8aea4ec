"""MonetDB sink: COPY payloads and statements checked without a server; live tests when
PINNPROV_TEST_MONETDB_URL names a scratch database (e.g. monetdb://monetdb:monetdb@localhost:50000/pinnprov_test)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from pathlib import Path

import pymonetdb
import pytest
from prov_builders import request_for, sample_run

from collector import monetdb_copy as mc
from collector.records import EpochRecord
from collector.schema import TABLES_BY_NAME
from collector.sinks.base import ExportStatus
from collector.sinks.monetdb import MonetdbSink, classify
from collector.translate import translate_traces

LIVE_URL = os.environ.get("PINNPROV_TEST_MONETDB_URL", "")
live = pytest.mark.skipif(not LIVE_URL, reason="set PINNPROV_TEST_MONETDB_URL to a scratch MonetDB database")


def _parse_monetdb_csv(payload: bytes) -> list[list[str | None]]:
    """MonetDB's COPY reader for our dialect: ',' fields, '\\n' records, '"' quotes with backslash escapes,
    an empty unquoted field is NULL. Written from the documented format, independently of the encoder."""
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
            fields.append(text[i:end] or None)
            i = end
        if text[i] == "\n":
            records.append(fields)
            fields = []
        i += 1
    return records


def test_fields_are_encoded_exactly() -> None:
    assert [mc.encode_field(x) for x in (None, True, False, 7, -2**40, 1.5, 0.1, 1e-300)] == [
        "", "true", "false", "7", "-1099511627776", "1.5", "0.1", "1e-300"]
    assert mc.encode_field(math.nan) == "" and mc.encode_field(math.inf) == ""
    assert mc.encode_field("") == '""'  # an empty string is not NULL
    assert mc.encode_field('a"b\\c\nd\te\x00') == '"a\\"b\\\\c\\nd\\te"'


def test_payload_round_trips_through_the_documented_format() -> None:
    tricky = ["plain", "", 'quo"te', "back\\slash", "new\nline", "tab\tbed", "comma, inside", "NULL", "ünïcødé"]
    rows = [{"a": text, "b": n, "c": n / 3 if n else None} for n, text in enumerate(tricky)]
    parsed = _parse_monetdb_csv(mc.copy_payload(rows, ("a", "b", "c")))
    assert [r[0] for r in parsed] == tricky
    assert [int(r[1]) for r in parsed] == list(range(len(tricky)))
    assert parsed[0][2] is None and [float(r[2]) for r in parsed[1:]] == [n / 3 for n in range(1, len(tricky))]


def test_a_batch_becomes_deduplicated_rows_per_operation() -> None:
    records = translate_traces(request_for(sample_run(1, epochs=5), sample_run(2, epochs=3))).records
    twice = records + [r for r in records if isinstance(r, EpochRecord)]  # a replay within one batch
    plan = dict((op.name, rows) for op, rows in mc.batch_rows(twice))
    assert len(plan["pp_epoch"]) == 8 and len(plan["pp_epoch_extra"]) == 8
    assert {r["run_id"]: (r["top_epoch"], r["low_lr"]) for r in plan["pp_run_summary"]} == {
        f"{1:032x}": (4, pytest.approx(1e-3 * 0.99**4)), f"{2:032x}": (2, pytest.approx(1e-3 * 0.99**2))}
    assert [r["run_name"] for r in plan["pp_run_start"]] == ["run-001", "run-002"]
    assert {r["status"] for r in plan["pp_run_end"]} == {"completed"}
    assert len(plan["pp_hyperparameter"]) == 20 and len(plan["pp_adaptation"]) == 2
    epochs = _parse_monetdb_csv(mc.copy_payload(plan["pp_epoch"], mc.EPOCHS.columns))
    first = dict(zip(mc.EPOCHS.columns, epochs[0], strict=True))
    assert first["run_id"] == f"{1:032x}" and first["epoch"] == "0" and float(first["loss"]) == 101.0


def test_statements_use_the_schema_and_quote_monetdb_keywords() -> None:
    for op in mc.OPERATIONS:
        table = TABLES_BY_NAME[op.target]
        known = {c.name for c in table.columns} | set(mc._EXTRA_TYPES)
        assert set(op.columns) <= known, op.name
        assert op.stage_ddl().startswith(f"CREATE LOCAL TEMPORARY TABLE {op.name} (")
        copy = op.copy_sql(12)
        assert copy.startswith(f"COPY 12 RECORDS INTO tmp.{op.name} (") and f"FROM '{op.name}' ON CLIENT" in copy
        for statement in (op.stage_ddl(), copy, op.apply_sql):
            for keyword in ("epoch", "name", "value", "seed"):  # MonetDB keywords must always be quoted
                assert not re.search(rf'(?<!["\w]){keyword}(?!["\w])', statement), (keyword, statement)
    assert "WHERE NOT EXISTS" in mc.EPOCHS.apply_sql and mc.EPOCHS.keep == "first"
    assert mc.RUN_START.apply_sql.startswith("MERGE INTO run t USING tmp.pp_run_start s ON t.run_id = s.run_id")
    assert "status = COALESCE(t.status, s.status)" in mc.RUN_START.apply_sql  # a late start never un-ends a run
    assert "WHEN NOT MATCHED" not in mc.RUN_SUMMARY.apply_sql


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


def _clean(url: str) -> None:
    from collector.store_monetdb import parse_monetdb_url

    conn = pymonetdb.connect(autocommit=True, **parse_monetdb_url(url))
    cursor = conn.cursor()
    for table in ("epoch_extra", "epoch_metric", "adaptation", "alert", "run_hyperparameter", "run_resource",
                  "run_summary", "run"):
        with contextlib.suppress(pymonetdb.Error):  # not created yet
            cursor.execute(f"DELETE FROM {table}")
    conn.close()


@live
def test_live_idempotent_bulk_writes_and_the_read_path() -> None:
    from collector.store import open_store

    _clean(LIVE_URL)
    sink = MonetdbSink(LIVE_URL)
    records = translate_traces(request_for(sample_run(1, epochs=50), sample_run(2, epochs=5))).records
    assert sink.export(records).ok
    assert sink.export(list(reversed(records))).ok  # a replay, end before start: no change
    store = open_store(LIVE_URL)
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


@live
def test_live_collector_writes_monetdb(tmp_path: Path) -> None:
    from collector_process import Collector, wait_for
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from prov_builders import build_spans

    from collector.store import open_store

    _clean(LIVE_URL)
    collector = Collector(tmp_path, "--store", LIVE_URL).start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True)
        exporter.export(build_spans(sample_run(4, epochs=20)))
        exporter.shutdown()
        store = open_store(LIVE_URL)
        wait_for(lambda: store.execute("SELECT COUNT(*) FROM epoch_metric").rows == [(20,)], 60)
        store.close()
    finally:
        collector.stop()
