"""The trainer side keeps what it could not deliver: SpoolingSpanExporter around real exporters, a real
in-process collector coming and going, spools adopted by the next process, and `pinnprov flush`."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from collector_process import rows, wait_for
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from prov_builders import build_spans, sample_run

from pinnprov.capture.otlp_decode import decode_spans
from pinnprov.capture.spool_exporter import SpoolingSpanExporter, find_spools
from pinnprov.collector.config import CollectorConfig
from pinnprov.collector.service import CollectorService


class Counting(SpanExporter):
    """Delegates to a real exporter and counts the calls (to see that a dead collector is not retried inline)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner, self.calls = inner, 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _collector(tmp_path: Path, port: int) -> CollectorService:
    config = CollectorConfig(grpc_endpoint=f"127.0.0.1:{port}", http_endpoint="", stores=(
        f"sqlite:///{tmp_path / 'prov.db'}",), spool_dir=tmp_path / "collector-spool", log_interval_s=0)
    service = CollectorService(config)
    service.start()
    return service


def _epoch_count(tmp_path: Path) -> int:
    return len(rows(tmp_path / "prov.db", "SELECT 1 FROM epoch_metric"))


def test_decoding_gives_back_what_the_encoder_wrote() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "k": [1, 2]}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope", "1.2.3")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes={"a": "x", "b": [1.5, 2.5]}) as p:
        p.add_event("evt", {"n": 3})
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, links=[Link(p.get_span_context(),
                                                                                     {"why": "because"})]) as c:
            c.set_status(Status(StatusCode.ERROR, "broke"))
            c.set_attribute("flag", True)
    provider.shutdown()
    request = encode_spans(exporter.get_finished_spans())
    assert encode_spans(decode_spans(request)) == request


def test_dead_collector_costs_one_timeout_then_spans_spool_and_replay_when_it_is_back(tmp_path: Path) -> None:
    port = _free_port()
    inner = Counting(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=1))
    exporter = SpoolingSpanExporter(inner, tmp_path / "spool", retry_initial_s=0.2, retry_max_s=0.5)
    try:
        assert exporter.export(build_spans(sample_run(1, epochs=3))) is SpanExportResult.SUCCESS
        calls = inner.calls
        for n in range(2, 5):  # while spooled data waits, new batches queue behind it without a network call
            assert exporter.export(build_spans(sample_run(n, epochs=3))) is SpanExportResult.SUCCESS
        assert exporter.pending() >= 3
        assert inner.calls - calls <= 3  # only the background probes, not one per export
        service = _collector(tmp_path, port)
        try:
            wait_for(lambda: _epoch_count(tmp_path) == 12, 60, what="replayed epochs")
            wait_for(lambda: exporter.pending() == 0, 30, what="an empty spool")
            assert exporter.export(build_spans(sample_run(5, epochs=2))) is SpanExportResult.SUCCESS
            wait_for(lambda: _epoch_count(tmp_path) == 14, 60, what="direct delivery again")
        finally:
            service.stop()
    finally:
        exporter.shutdown()
    assert not list(find_spools(tmp_path / "spool"))  # nothing left, nothing littered


def _leave_a_spool(root: Path, port: int, runs: range) -> None:
    """A process whose collector never came back: it exits with its spans on disk."""
    exporter = SpoolingSpanExporter(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=1),
                                    root, retry_initial_s=30, shutdown_replay_s=0.1)
    for n in runs:
        assert exporter.export(build_spans(sample_run(n, epochs=2))) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert len(list(find_spools(root))) == 1


def test_the_next_process_delivers_what_a_previous_one_left(tmp_path: Path) -> None:
    port = _free_port()
    root = tmp_path / "spool"
    _leave_a_spool(root, port, range(1, 4))
    service = _collector(tmp_path, port)
    try:
        successor = SpoolingSpanExporter(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True,
                                                          timeout=5), root)
        wait_for(lambda: _epoch_count(tmp_path) == 6, 60, what="adopted epochs")
        wait_for(lambda: not list(find_spools(root)), 30, what="the adopted spool to be removed")
        successor.shutdown()
    finally:
        service.stop()


def _flush(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pinnprov", "flush", *args], capture_output=True, text=True,
                          timeout=120)


def test_pinnprov_flush_to_a_collector_and_into_a_store(tmp_path: Path) -> None:
    port = _free_port()
    root = tmp_path / "spool"
    _leave_a_spool(root, port, range(1, 3))
    down = _flush("--spool", str(root), "--endpoint", f"http://127.0.0.1:{port}", "--timeout", "1")
    assert down.returncode == 1 and "not delivered" in down.stdout
    service = _collector(tmp_path, port)
    try:
        flushed = _flush("--spool", str(root), "--endpoint", f"http://127.0.0.1:{port}")
        assert flushed.returncode == 0, flushed.stderr
        assert "flushed 2 batch(es)" in flushed.stdout
        wait_for(lambda: _epoch_count(tmp_path) == 4, 60, what="flushed epochs")
    finally:
        service.stop()
    _leave_a_spool(root, port, range(7, 8))
    local = tmp_path / "local.db"
    direct = _flush("--spool", str(root), "--store", f"sqlite:///{local}")
    assert direct.returncode == 0, direct.stderr
    assert rows(local, "SELECT run_id, COUNT(*) FROM epoch_metric GROUP BY run_id") == [(f"{7:032x}", 2)]
    assert _flush("--spool", str(tmp_path / "nowhere"), "--store", f"sqlite:///{local}").returncode == 2


def test_embedded_store_locked_then_free(tmp_path: Path) -> None:
    """Around the embedded exporter: a locked SQLite store is a failed export, kept and replayed."""
    from pinnprov.capture.embedded import EmbeddedExporter
    from pinnprov.collector.pipeline import Pipeline
    from pinnprov.store.sqlite_sink import SqliteSink

    db = tmp_path / "embedded.db"
    sink = SqliteSink(db, busy_timeout_s=0.2)
    exporter = SpoolingSpanExporter(EmbeddedExporter(Pipeline([sink])), tmp_path / "spool", retry_initial_s=0.2,
                                    retry_max_s=0.5)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    assert exporter.export(build_spans(sample_run(1, epochs=4))) is SpanExportResult.SUCCESS
    assert exporter.pending() == 1 and time.monotonic() - started < 30
    blocker.execute("ROLLBACK")
    blocker.close()
    wait_for(lambda: exporter.pending() == 0, 60, what="replay into the embedded store")
    exporter.shutdown()
    assert rows(db, "SELECT COUNT(*) FROM epoch_metric") == [(4,)]
