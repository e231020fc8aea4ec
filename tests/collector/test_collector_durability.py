"""Nothing acknowledged is lost: the collector SIGKILLed in the middle of a run, the store locked, a store that
is down, poison records. Real processes, real sockets, real SQLite; every epoch must be stored exactly once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import requests
from collector_process import Collector, rows, start_sender, wait_for
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prov_builders import build_spans, request_for, sample_run

from pinnprov.core import vocabulary as v

pytestmark = pytest.mark.slow


def _assert_every_epoch_once(db: Path, run_id: str, epochs: int) -> None:
    stored = wait_for(lambda: (r := rows(db, "SELECT epoch, loss FROM epoch_metric WHERE run_id = ? ORDER BY epoch",
                                         (run_id,))) and len(r) >= epochs and r, 120, what=f"{epochs} epochs")
    assert [epoch for epoch, _ in stored] == list(range(epochs))  # each once, none missing
    assert [loss for _, loss in stored] == pytest.approx([1000.0 / (e + 1) for e in range(epochs)])
    status = wait_for(lambda: rows(db, "SELECT status, last_epoch FROM run WHERE run_id = ?", (run_id,)))
    assert status == [("completed", epochs - 1)]


def test_collector_killed_mid_run_and_restarted_loses_nothing(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    run_id = "a1" * 16
    epochs = 400
    sender = start_sender(tmp_path, run_id, f"http://{collector.grpc}", tmp_path / "trainer-spool", epochs, rate=20)
    try:
        wait_for(lambda: len(rows(collector.store, "SELECT 1 FROM epoch_metric")) >= 40, 60, what="first epochs")
        collector.kill()
        killed_at = time.monotonic()
        before = len(rows(collector.store, "SELECT 1 FROM epoch_metric"))
        assert 40 <= before < epochs
        time.sleep(max(0.0, 10.0 - (time.monotonic() - killed_at)))
        collector.start()  # same ports, same spool
        assert sender.wait(120) == 0
        _assert_every_epoch_once(collector.store, run_id, epochs)
        log = (tmp_path / f"sender-{run_id[-6:]}.log").read_text()
        assert "keeping them in" in log  # the trainer side really spooled while the collector was gone
        assert log.strip().endswith("pending 0"), log[-500:]
        assert not list((tmp_path / "trainer-spool").glob("*/LOCK"))  # delivered spools are removed
    finally:
        sender.kill()
        collector.stop()


def test_store_locked_while_collector_is_killed_then_released(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
    assert exporter.export(build_spans(sample_run(1, epochs=2))) is SpanExportResult.SUCCESS
    wait_for(lambda: len(rows(collector.store, "SELECT 1 FROM epoch_metric")) == 2, what="warm-up epochs")
    blocker = sqlite3.connect(collector.store, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the store is unavailable to every other writer
    try:
        for n in range(2, 6):  # acknowledged although the store cannot take them: they are in the spool
            assert exporter.export(build_spans(sample_run(n, epochs=10))) is SpanExportResult.SUCCESS
        depth = collector.metrics()["sinks"]["sqlite"]["queue_depth"]
        assert depth >= 3
        collector.kill()
        collector.start()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        stored = wait_for(lambda: (r := rows(collector.store, "SELECT run_id, COUNT(*) FROM epoch_metric GROUP BY "
                                                              "run_id ORDER BY run_id")) and len(r) == 5 and r, 120)
        assert stored == [(f"{n:032x}", 2 if n == 1 else 10) for n in range(1, 6)]
    finally:
        exporter.shutdown()
        assert collector.stop() == 0


def test_a_store_that_is_down_holds_back_only_itself(tmp_path: Path) -> None:
    # MonetDB on a closed port: its worker retries with backoff while SQLite keeps writing.
    collector = Collector(tmp_path, "--store", f"sqlite:///{tmp_path / 'prov.db'}",
                          "--store", "monetdb://monetdb:monetdb@127.0.0.1:9/pinnprov").start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
        assert exporter.export(build_spans(sample_run(1, epochs=6))) is SpanExportResult.SUCCESS
        exporter.shutdown()
        wait_for(lambda: len(rows(collector.store, "SELECT 1 FROM epoch_metric")) == 6, what="sqlite rows")
        sinks = wait_for(lambda: (s := collector.metrics()["sinks"])["monetdb"]["state"] == "retrying" and s)
        assert sinks["monetdb"]["queue_depth"] == 1 and "Connection refused" in sinks["monetdb"]["last_error"]
        assert sinks["sqlite"]["queue_depth"] == 0
        health = requests.get(f"{collector.http}/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {
            "status": "degraded", "sinks_retrying": ["monetdb"], "spool_pending_bytes": health.json()[
                "spool_pending_bytes"]}
    finally:
        assert collector.stop() == 0


def test_poison_requests_are_set_aside_and_the_rest_is_written(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
        assert exporter.export(build_spans(sample_run(1, epochs=3, name="taken"))) is SpanExportResult.SUCCESS
        # Another run claiming the same name: the store's UNIQUE(run_name) refuses its start record forever.
        assert exporter.export(build_spans(sample_run(2, epochs=3, name="taken"))) is SpanExportResult.SUCCESS
        # A span with a string loss: translation refuses that span, its neighbours are kept.
        bad = request_for(sample_run(3, epochs=3))
        spans = bad.resource_spans[0].scope_spans[0].spans
        poisoned = next(s for s in spans if s.name == v.EPOCH_SPAN)
        for attribute in poisoned.attributes:
            if attribute.key == v.LOSS_TOTAL:
                attribute.value.string_value = "not a number"
        answer = requests.post(f"{collector.http}/v1/traces", data=bad.SerializeToString(),
                               headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert answer.status_code == 200
        dead = tmp_path / "spool" / "dead-letter.jsonl"
        entries = wait_for(lambda: dead.exists() and len(dead.read_text().splitlines()) >= 2 and
                           [json.loads(line) for line in dead.read_text().splitlines()], what="dead letters")
        reasons = " | ".join(entry["reason"] for entry in entries)
        assert "IntegrityError" in reasons or "UNIQUE" in reasons, reasons
        assert "bad_attribute" in reasons or "loss" in reasons, reasons
        assert rows(collector.store, "SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (f"{3:032x}",)) == [(2,)]
        assert rows(collector.store, "SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (f"{2:032x}",)) == [(3,)]
        assert rows(collector.store, "SELECT run_name FROM run WHERE run_id = ?", (f"{1:032x}",)) == [("taken",)]
        # ... and the service goes on.
        assert exporter.export(build_spans(sample_run(4, epochs=2))) is SpanExportResult.SUCCESS
        wait_for(lambda: rows(collector.store, "SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?",
                              (f"{4:032x}",)) == [(2,)], what="epochs after the poison")
        exporter.shutdown()
    finally:
        assert collector.stop() == 0


def test_full_spool_refuses_with_retry_later_instead_of_growing(tmp_path: Path) -> None:
    import grpc
    from google.rpc.error_details_pb2 import RetryInfo
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    collector = Collector(tmp_path, "--max-request-bytes", "100000", "--max-spool-bytes", "300000").start()
    exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
    assert exporter.export(build_spans(sample_run(1, epochs=1))) is SpanExportResult.SUCCESS  # creates the store
    wait_for(lambda: rows(collector.store, "SELECT 1 FROM epoch_metric"), what="the store")
    blocker = sqlite3.connect(collector.store, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        body = request_for(sample_run(2, epochs=150)).SerializeToString()
        statuses = [requests.post(f"{collector.http}/v1/traces", data=body, timeout=30,
                                  headers={"Content-Type": "application/x-protobuf"}) for _ in range(8)]
        codes = [answer.status_code for answer in statuses]
        assert 200 in codes and codes[-1] == 503, codes
        assert statuses[-1].headers["Retry-After"].isdigit()
        with grpc.insecure_channel(collector.grpc) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(request_for(sample_run(3, epochs=150)), timeout=30)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        retry = dict(refused.value.trailing_metadata())["google.rpc.retryinfo-bin"]
        assert RetryInfo.FromString(retry).retry_delay.seconds >= 1
        metrics = collector.metrics()
        assert metrics["spool"]["pending_bytes"] <= 300000 and metrics["refused"]["traces.overload"] >= 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        wait_for(lambda: collector.metrics()["sinks"]["sqlite"]["queue_depth"] == 0, 60, what="the backlog")
        assert exporter.export(build_spans(sample_run(4, epochs=2))) is SpanExportResult.SUCCESS  # room again
        exporter.shutdown()
    finally:
        assert collector.stop() == 0


def test_alert_rules_from_the_config_file_fire_once_into_the_store(tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("rules:\n  - name: loss-high\n    kind: threshold\n    metric: loss\n    op: '>'\n"
                      "    threshold: 50\n    after_epoch: 1\n    actions: [log]\n")
    collector = Collector(tmp_path, config=config).start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True, timeout=30)
        assert exporter.export(build_spans(sample_run(1, epochs=4))) is SpanExportResult.SUCCESS
        assert exporter.export(build_spans(sample_run(1, epochs=4))) is SpanExportResult.SUCCESS  # a replay
        exporter.shutdown()
        # loss = 100 / 2**epoch + 1: 51.0 at epoch 1 is the first above 50 after epoch 1; it fires once.
        alerts = wait_for(lambda: rows(collector.store, "SELECT rule, epoch, value FROM alert"), what="the alert")
        assert alerts == [("loss-high", 1, 51.0)]
    finally:
        assert collector.stop() == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    kind: threshold\n    metric: nonsense\n")
    from pinnprov.collector.config import load_config

    with pytest.raises(ValueError, match="rule 'x'"):
        load_config(bad)
