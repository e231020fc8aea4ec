"""ProvenanceObserver on the real OpenTelemetry SDK: trace model, exact vocabulary, sampling, failures, metrics."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pinnprov.capture.observer import ProvenanceObserver
from pinnprov.capture.provider import DeliveryCounter, batch_processor, build_tracer_provider
from pinnprov.core import vocabulary as v
from pinnprov.pinn.observer import Adapted, DatasetIdentity, EpochEnded, RunEnded, RunStarted

DATASET = DatasetIdentity(name="crosshole", sha256="ab" * 32, picks=100, source="benchmark")
HYPERPARAMETERS = {"optimizer": "adam", "activation": "tanh", "lr.initial": 1e-3, "epochs": 10, "jit_compile": False}


def _provider(exporter: SpanExporter, **kwargs: object) -> TracerProvider:
    return build_tracer_provider([batch_processor(exporter, **kwargs)], Resource.create({}))


def _start(observer: ProvenanceObserver, run_id: str | None = None, started_at: float = 1_700_000_000.0) -> str:
    run_id = run_id or uuid.uuid4().hex
    observer.on_run_start(RunStarted(run_id, "adam-tanh-1", "sweep", started_at, HYPERPARAMETERS, DATASET))
    return run_id


def _epoch(epoch: int, start: float = 1_700_000_001.0, extra: dict[str, float] | None = None) -> EpochEnded:
    begin = start + epoch * 0.01
    return EpochEnded(epoch, begin, begin + 0.008, 0.008, 1.5 / (epoch + 1), 0.1, 0.2, 0.3, 1e-3, extra or {})


def _finished(provider: TracerProvider, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    provider.force_flush()
    return list(exporter.get_finished_spans())


def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_trace_id_is_run_id_and_spans_follow_the_vocabulary() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider)
    run_id = _start(observer)
    observer.on_epoch_end(_epoch(0, extra={"data_rms_s": 2e-5}))
    observer.on_epoch_end(_epoch(1))
    observer.on_adaptation(Adapted(1, 1_700_000_001.5, "learning_rate", 1e-3, 5e-4, "user:ana", "too slow", "c1"))
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 2, summary={"r2": 0.4, "bad": float("nan")}))
    spans = _finished(provider, exporter)

    assert sorted(s.name for s in spans) == sorted(
        [v.RUN_START_SPAN, v.EPOCH_SPAN, v.EPOCH_SPAN, v.ADAPTATION_SPAN, v.RUN_SPAN]
    )
    assert {format(s.context.trace_id, "032x") for s in spans} == {run_id}
    (root,) = _by_name(spans, v.RUN_SPAN)
    assert root.parent is None
    assert all(s.parent.span_id == root.context.span_id for s in spans if s is not root)

    (start,) = _by_name(spans, v.RUN_START_SPAN)
    expected = {v.RUN_ID: run_id, v.RUN_NAME: "adam-tanh-1", v.EXPERIMENT: "sweep"}
    expected |= {v.HYPERPARAMETER_PREFIX + k: value for k, value in HYPERPARAMETERS.items()}
    expected |= {v.DATASET_NAME: "crosshole", v.DATASET_SHA256: "ab" * 32, v.DATASET_PICKS: 100,
                 v.DATASET_SOURCE: "benchmark"}
    assert dict(start.attributes) == expected
    assert start.start_time == start.end_time == 1_700_000_000 * 10**9

    first, second = sorted(_by_name(spans, v.EPOCH_SPAN), key=lambda s: s.attributes[v.EPOCH])
    assert dict(first.attributes) == {
        v.EPOCH: 0, v.EPOCH_ELAPSED: 0.008, v.LOSS_TOTAL: 1.5, v.LOSS_BOUNDARY: 0.1, v.LOSS_RESIDUAL: 0.2,
        v.LOSS_DATA: 0.3, v.LEARNING_RATE: 1e-3, v.EPOCH_EXTRA_PREFIX + "data_rms_s": 2e-5,
    }
    assert first.start_time == int(1_700_000_001.0 * 1e9) and first.end_time == int(1_700_000_001.008 * 1e9)
    assert v.EPOCH_EXTRA_PREFIX + "data_rms_s" not in second.attributes

    (adaptation,) = _by_name(spans, v.ADAPTATION_SPAN)
    assert dict(adaptation.attributes) == {
        v.EPOCH: 1, v.ADAPTATION_PARAMETER: "learning_rate", v.ADAPTATION_OLD: 1e-3, v.ADAPTATION_NEW: 5e-4,
        v.ADAPTATION_AGENT: "user:ana", v.ADAPTATION_REASON: "too slow", v.ADAPTATION_COMMAND_ID: "c1",
    }
    assert root.attributes[v.RUN_STATUS] == "completed" and root.attributes[v.RUN_EPOCHS] == 2
    assert root.attributes[v.SUMMARY_PREFIX + "r2"] == 0.4
    assert v.SUMMARY_PREFIX + "bad" not in root.attributes  # NaN summaries are omitted, not stored as numbers
    assert v.RUN_ERROR not in root.attributes
    assert root.status.status_code is StatusCode.OK
    assert root.start_time == 1_700_000_000 * 10**9 and root.end_time == 1_700_000_002 * 10**9
    assert observer.spans_ended == len(spans) and observer.errors == 0


def test_every_kth_epoch_plus_first_and_last() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider, capture_every=3)
    _start(observer)
    for epoch in range(11):
        observer.on_epoch_end(_epoch(epoch))
    observer.on_run_end(RunEnded("stopped", 1_700_000_002.0, 11))
    epochs = sorted(s.attributes[v.EPOCH] for s in _by_name(_finished(provider, exporter), v.EPOCH_SPAN))
    assert epochs == [0, 3, 6, 9, 10]

    # A run whose last epoch is on the grid is not captured twice; a second run starts its own sampling.
    exporter.clear()
    run_id = _start(observer)
    for epoch in range(7):
        observer.on_epoch_end(_epoch(epoch))
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 7))
    spans = [s for s in _finished(provider, exporter) if format(s.context.trace_id, "032x") == run_id]
    assert sorted(s.attributes[v.EPOCH] for s in _by_name(spans, v.EPOCH_SPAN)) == [0, 3, 6]


def test_a_resumed_run_captures_its_first_epoch_even_off_the_grid() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider, capture_every=5)
    _start(observer)
    for epoch in range(101, 112):
        observer.on_epoch_end(_epoch(epoch))
    observer.on_run_end(RunEnded("completed", 1_700_000_009.0, 11))
    epochs = sorted(s.attributes[v.EPOCH] for s in _by_name(_finished(provider, exporter), v.EPOCH_SPAN))
    assert epochs == [101, 105, 110, 111]


def test_failed_run_has_error_status_and_message() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider)
    _start(observer)
    observer.on_epoch_end(_epoch(0))
    observer.on_run_end(RunEnded("failed", 1_700_000_003.0, 1, error="FloatingPointError: loss is not finite"))
    (root,) = _by_name(_finished(provider, exporter), v.RUN_SPAN)
    assert root.attributes[v.RUN_STATUS] == "failed"
    assert root.attributes[v.RUN_ERROR] == "FloatingPointError: loss is not finite"
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "FloatingPointError: loss is not finite"


def test_a_new_run_before_the_old_one_ended_closes_the_old_one_as_failed() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider)
    first = _start(observer)
    second = _start(observer, started_at=1_700_000_050.0)
    observer.on_run_end(RunEnded("completed", 1_700_000_060.0, 0))
    roots = {format(s.context.trace_id, "032x"): s for s in _by_name(_finished(provider, exporter), v.RUN_SPAN)}
    assert roots[first].attributes[v.RUN_STATUS] == "failed"
    assert roots[second].attributes[v.RUN_STATUS] == "completed"


def test_foreign_provider_still_gets_run_id_as_trace_id() -> None:
    """A user's own TracerProvider (no RunIdGenerator): the root span gets a remote parent with the run's id."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = ProvenanceObserver(provider, flush_promptly=False)
    run_id = _start(observer)
    observer.on_epoch_end(_epoch(0))
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 1))
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert {format(s.context.trace_id, "032x") for s in spans} == {run_id}


def test_a_run_id_that_is_not_hex_is_hashed_consistently() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider)
    _start(observer, run_id="my-run")
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 0))
    spans = _finished(provider, exporter)
    trace_ids = {format(s.context.trace_id, "032x") for s in spans}
    assert len(trace_ids) == 1
    # The collector checks pinn.run.id against the trace id, so the attribute carries the effective id.
    assert {s.attributes[v.RUN_ID] for s in spans if v.RUN_ID in s.attributes} == trace_ids


def test_bad_events_and_events_outside_a_run_never_raise() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    observer = ProvenanceObserver(provider)
    observer.on_epoch_end(_epoch(0))  # before any run: ignored
    observer.on_run_end(RunEnded("completed", 1.0, 0))
    _start(observer)
    observer.on_epoch_end(EpochEnded(1, 1.0, 2.0, 1.0, "not a number", 0.1, 0.2, 0.3, 1e-3))  # type: ignore[arg-type]
    observer.on_epoch_end(_epoch(2))
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 3))
    assert observer.errors == 1
    epochs = [s.attributes[v.EPOCH] for s in _by_name(_finished(provider, exporter), v.EPOCH_SPAN)]
    assert epochs == [2]


def test_metrics_by_component_learning_rate_duration_and_epoch_count() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    observer = ProvenanceObserver(_provider(exporter), meters, capture_every=4)
    run_id = _start(observer)
    for epoch in range(10):
        observer.on_epoch_end(_epoch(epoch))
    observer.on_run_end(RunEnded("completed", 1_700_000_002.0, 10))
    data = reader.get_metrics_data()
    points = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert set(points) == {v.METRIC_EPOCH_DURATION, v.METRIC_LOSS, v.METRIC_LEARNING_RATE, v.METRIC_EPOCHS}
    (counter,) = points[v.METRIC_EPOCHS]
    assert counter.value == 10 and dict(counter.attributes) == {v.RUN_ID: run_id}  # every epoch is counted
    losses = {p.attributes[v.LOSS_COMPONENT]: p.value for p in points[v.METRIC_LOSS]}
    assert losses == pytest.approx({"total": 1.5 / 10, "boundary": 0.1, "residual": 0.2, "data": 0.3})
    (duration,) = points[v.METRIC_EPOCH_DURATION]
    assert duration.count == 4 and duration.sum == pytest.approx(4 * 0.008)  # captured epochs 0, 4, 8, 9
    (rate,) = points[v.METRIC_LEARNING_RATE]
    assert rate.value == 1e-3


def test_run_start_is_exported_promptly_despite_a_long_schedule_delay() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter, schedule_delay_ms=600_000)
    observer = ProvenanceObserver(provider)
    _start(observer)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not exporter.get_finished_spans():
        time.sleep(0.01)
    assert [s.name for s in exporter.get_finished_spans()] == [v.RUN_START_SPAN]


class _BlockingExporter(SpanExporter):
    """Holds every export until released: a store that stalls while training goes on."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans = 0

    def export(self, spans: object) -> SpanExportResult:
        self.release.wait(30)
        self.spans += len(spans)  # type: ignore[arg-type]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_queue_overflow_is_counted_not_silent() -> None:
    blocking = _BlockingExporter()
    counter = DeliveryCounter(blocking)
    provider = _provider(counter, max_queue_size=16, max_export_batch_size=4, schedule_delay_ms=10)
    observer = ProvenanceObserver(provider, flush_promptly=False)
    _start(observer)
    for epoch in range(200):
        observer.on_epoch_end(_epoch(epoch))
    observer.on_run_end(RunEnded("completed", 1_700_000_009.0, 200))
    blocking.release.set()
    provider.force_flush()
    delivered = counter.counts.exported
    assert delivered == blocking.spans
    assert observer.spans_ended == 202
    assert 0 < delivered < observer.spans_ended  # the difference is what the SDK queue dropped


# --- with the real trainer -------------------------------------------------------------------------------------


class _RaisingExporter(SpanExporter):
    """A collector that breaks on every batch (on the processor's thread)."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: object) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector exploded")

    def shutdown(self) -> None:
        return None


class _RaisingProcessor(SimpleSpanProcessor):
    """Breaks on the training thread itself, inside span.end()."""

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == v.EPOCH_SPAN and span.attributes[v.EPOCH] % 7 == 3:
            raise RuntimeError("processor exploded")
        super().on_end(span)


def _tiny_config() -> object:
    from pinnprov.pinn.config import TrainConfig

    return TrainConfig(epochs=40, collocation_count=100, boundary_points=20, threads=1, stopping="none",
                       tau_layers=2, tau_units=8, velocity_layers=2, velocity_units=8, steps_per_call=10)


@pytest.mark.slow
def test_broken_telemetry_never_interrupts_a_real_training_run() -> None:
    pytest.importorskip("tensorflow")
    from pinnprov.pinn.benchmark import crosshole_benchmark
    from pinnprov.pinn.trainer import train

    raising = _RaisingExporter()
    counter = DeliveryCounter(raising)
    broken_export = ProvenanceObserver(_provider(counter, schedule_delay_ms=5))
    survivors = InMemorySpanExporter()
    provider = build_tracer_provider([], Resource.create({}))
    provider.add_span_processor(_RaisingProcessor(survivors))
    broken_processor = ProvenanceObserver(provider, flush_promptly=False)

    result = train(_tiny_config(), crosshole_benchmark(), [broken_export, broken_processor])

    assert result.status == "completed" and result.epochs == 40
    broken_export._provider.force_flush()  # type: ignore[attr-defined]
    assert raising.calls >= 1 and counter.counts.exported == 0 and counter.counts.failed == broken_export.spans_ended
    assert broken_processor.errors == 6  # epochs 3, 10, 17, 24, 31, 38: logged, training went on
    spans = survivors.get_finished_spans()
    epochs = sorted(s.attributes[v.EPOCH] for s in spans if s.name == v.EPOCH_SPAN)
    assert epochs == [e for e in range(40) if e % 7 != 3]
    (root,) = [s for s in spans if s.name == v.RUN_SPAN]
    assert format(root.context.trace_id, "032x") == result.run_id
    assert root.attributes[v.RUN_STATUS] == "completed" and root.attributes[v.RUN_EPOCHS] == 40
