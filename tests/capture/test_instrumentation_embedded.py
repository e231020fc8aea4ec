"""EmbeddedExporter into the real collector pipeline and a real SQLite sink: result mapping, locking, rejection."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pinnprov.capture.embedded import EmbeddedExporter
from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.capture.provider import build_tracer_provider
from pinnprov.collector.pipeline import Pipeline
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import DatasetIdentity, EpochEnded, RunEnded, RunStarted
from pinnprov.store.sqlite_sink import SqliteSink


def _spans(epochs: int = 3) -> tuple[str, list[ReadableSpan]]:
    """Real SDK spans of a small run, collected synchronously."""
    memory = InMemorySpanExporter()
    provider = build_tracer_provider([], Resource.create({"service.name": "embedded-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    observer = ProvenanceObserver(provider, flush_promptly=False)
    run_id = uuid.uuid4().hex
    now = time.time()
    observer.on_run_start(RunStarted(run_id, f"emb-{run_id[:8]}", "x", now, {"optimizer": "adam", "epochs": epochs},
                                     DatasetIdentity("crosshole", "11" * 32, 100, "benchmark")))
    for epoch in range(epochs):
        observer.on_epoch_end(EpochEnded(epoch, now + epoch, now + epoch + 0.25, 0.25, 2.0 - epoch, 0.1, 0.2, 0.3,
                                         1e-3, {"data_rms_s": 1e-5}))
    observer.on_run_end(RunEnded("completed", now + epochs, epochs, summary={"r2": 0.5}))
    return run_id, list(memory.get_finished_spans())


def test_spans_reach_the_store_through_the_otlp_translation(tmp_path: Path) -> None:
    store = tmp_path / "prov.sqlite"
    exporter = EmbeddedExporter(Pipeline([SqliteSink(store)]))
    run_id, spans = _spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # at-least-once delivery: a replay is a no-op
    exporter.shutdown()
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT epoch, loss, elapsed_s FROM epoch_metric WHERE run_id = ? ORDER BY epoch",
                            (run_id,)).fetchall()
        run = conn.execute("SELECT status, epochs, service, optimizer FROM run WHERE run_id = ?", (run_id,)).fetchone()
        extra = conn.execute("SELECT COUNT(*) FROM epoch_extra WHERE run_id = ? AND name = 'data_rms_s'",
                             (run_id,)).fetchone()
    assert rows == [(0, 2.0, 0.25), (1, 1.0, 0.25), (2, 0.0, 0.25)]
    assert run == ("completed", 3, "embedded-test", "adam")
    assert extra == (3,)


def test_a_locked_store_is_a_failure_to_retry_then_succeeds(tmp_path: Path) -> None:
    store = tmp_path / "locked.sqlite"
    exporter = EmbeddedExporter(Pipeline([SqliteSink(store, busy_timeout_s=0.05)]))
    blocker = sqlite3.connect(store, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    run_id, spans = _spans()
    try:
        assert exporter.export(spans) is SpanExportResult.FAILURE
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM epoch_metric WHERE run_id = ?", (run_id,)).fetchone() == (3,)


def test_invalid_spans_are_rejected_without_retry_and_the_rest_is_written(tmp_path: Path) -> None:
    store = tmp_path / "rejects.sqlite"
    exporter = EmbeddedExporter(Pipeline([SqliteSink(store)]))
    run_id, spans = _spans(epochs=2)
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    root = next(s for s in spans if s.name == v.RUN_SPAN)
    from opentelemetry import trace

    parent = trace.set_span_in_context(trace.NonRecordingSpan(root.context))
    provider.get_tracer("test").start_span(v.EPOCH_SPAN, parent, attributes={v.EPOCH: 7, v.LOSS_TOTAL: "huge"}).end()
    assert exporter.export(spans + list(memory.get_finished_spans())) is SpanExportResult.SUCCESS
    assert exporter.spans_rejected == 1
    exporter.shutdown()
    with sqlite3.connect(store) as conn:
        epochs = [r[0] for r in conn.execute("SELECT epoch FROM epoch_metric WHERE run_id = ?", (run_id,))]
    assert sorted(epochs) == [0, 1]


def test_after_shutdown_exports_fail_and_the_pipeline_is_closed_once(tmp_path: Path) -> None:
    pipeline = Pipeline([SqliteSink(tmp_path / "closed.sqlite")])
    exporter = EmbeddedExporter(pipeline)
    exporter.shutdown()
    exporter.shutdown()
    _, spans = _spans(1)
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.force_flush() is False
    assert pipeline.handle_traces(b"").status.value == "retryable"  # the pipeline itself was shut down
