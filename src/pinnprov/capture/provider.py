"""Private OpenTelemetry providers for one capture: asynchronous span export, run id as trace id, bounded exit.

Why private providers: pinnprov is a library inside someone's training script; replacing the global
TracerProvider would hijack the user's own OpenTelemetry setup. `set_global=True` opts in.

Why these defaults (each overridable by an explicit argument, then the standard `OTEL_BSP_*` variable):
- schedule delay 200 ms (the SDK's default is 5 s): a finished epoch is queryable within about a second;
- queue of 65 536 spans, batches of 1 024: at 500 epochs/s the queue holds two minutes of a stalled store;
  if it still overflows the SDK drops the oldest spans, and `DeliveryCounter` makes the loss visible
  (spans ended vs. spans handed to the exporter) instead of silent;
- always-on sampling: provenance is a record, not a statistical sample, so `OTEL_TRACES_SAMPLER` is ignored
  (use `capture_every` to thin epochs deterministically);
- up to 1 024 attributes per span (the SDK's 128 would truncate a run's hyperparameters) unless
  `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT` says otherwise.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.environment_variables import (
    OTEL_ATTRIBUTE_COUNT_LIMIT,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from pinnprov.core.settings import resolve

DEFAULT_SCHEDULE_DELAY_MS = 200.0
DEFAULT_MAX_QUEUE_SIZE = 65_536
DEFAULT_MAX_EXPORT_BATCH_SIZE = 1_024
DEFAULT_MAX_SPAN_ATTRIBUTES = 1_024
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 10_000.0

_log = logging.getLogger(__name__)


class RunIdGenerator(IdGenerator):
    """Random ids, except that the next root span started on this thread may be given its trace id.

    Why: one trace per run with trace id == run id, so the store keys a run by the id the trainer chose and
    a re-delivered span lands on the same row. A thread-local hand-over keeps a root span that some other
    thread starts at the same moment from stealing the run's id.
    """

    def __init__(self) -> None:
        self._pending = threading.local()
        self.run_id: str | None = None  # the latest run's id (32 hex digits): metric exports carry it

    def use_trace_id(self, trace_id: int) -> None:
        """The next root span started on the calling thread gets `trace_id` (once)."""
        if not 0 < trace_id < 1 << 128:
            raise ValueError(f"trace id out of range: {trace_id:#x}")
        self._pending.trace_id = trace_id
        self.run_id = f"{trace_id:032x}"

    def generate_trace_id(self) -> int:
        trace_id = getattr(self._pending, "trace_id", 0)
        if trace_id:
            self._pending.trace_id = 0
            return trace_id
        return random.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1


@dataclass
class DeliveryCounts:
    """What happened to the spans handed to one exporter (read after a flush)."""

    exported: int = 0  # spans in batches the exporter accepted
    failed: int = 0  # spans in batches the exporter reported as failed (or that raised)


class DeliveryCounter(SpanExporter):
    """Counts spans passing to the wrapped exporter, so drops in the SDK's queue can be reported.

    Spans ended minus spans that reached `export` (after a flush) is what the queue dropped; the SDK's
    processor itself only logs a warning. The batch processor serialises `export` calls, but a lock keeps
    the counts right even for a caller that does not.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.counts = DeliveryCounts()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as error:  # noqa: BLE001 - an exporter must not take the processor down
            _log.warning("span exporter %s raised: %s", type(self.inner).__name__, error)
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.counts.exported += len(spans)
            else:
                self.counts.failed += len(spans)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _env_number(key: str, explicit: float | None, env_var: str, default: float) -> float:
    value = resolve(key, explicit, env_var, default, float)
    if value <= 0:
        raise ValueError(f"{key}: must be positive, got {value!r}")
    return float(value)


def batch_processor(
    exporter: SpanExporter,
    *,
    schedule_delay_ms: float | None = None,
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
) -> BatchSpanProcessor:
    """A BatchSpanProcessor with pinnprov's defaults (module docstring); explicit > OTEL_BSP_* > default."""
    delay = _env_number("schedule_delay_ms", schedule_delay_ms, OTEL_BSP_SCHEDULE_DELAY, DEFAULT_SCHEDULE_DELAY_MS)
    queue = int(_env_number("max_queue_size", max_queue_size, OTEL_BSP_MAX_QUEUE_SIZE, DEFAULT_MAX_QUEUE_SIZE))
    batch = int(
        _env_number(
            "max_export_batch_size", max_export_batch_size, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
            DEFAULT_MAX_EXPORT_BATCH_SIZE,
        )
    )
    return BatchSpanProcessor(
        exporter,
        max_queue_size=queue,
        schedule_delay_millis=delay,
        max_export_batch_size=min(batch, queue),
        # The processor's own metrics would go to the *global* MeterProvider: keep them out of the user's.
        meter_provider=metrics_api.NoOpMeterProvider(),
    )


def _span_limits() -> SpanLimits:
    if os.environ.get(OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT) or os.environ.get(OTEL_ATTRIBUTE_COUNT_LIMIT):
        return SpanLimits()  # the operator decided
    return SpanLimits(max_span_attributes=DEFAULT_MAX_SPAN_ATTRIBUTES)


def build_tracer_provider(
    processors: Sequence[BatchSpanProcessor],
    resource: Resource,
    *,
    set_global: bool = False,
    id_generator: RunIdGenerator | None = None,
) -> TracerProvider:
    """A TracerProvider with a RunIdGenerator, always-on sampling and no atexit hook (we shut down ourselves)."""
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=resource,
        shutdown_on_exit=False,  # the SDK's atexit shutdown could block interpreter exit on a dead collector
        id_generator=id_generator or RunIdGenerator(),
        span_limits=_span_limits(),
        meter_provider=metrics_api.NoOpMeterProvider(),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    if set_global:
        trace_api.set_tracer_provider(provider)
    return provider


def build_meter_provider(
    exporter: MetricExporter | None,
    resource: Resource,
    *,
    export_interval_ms: float | None = None,
    set_global: bool = False,
) -> metrics_api.MeterProvider:
    """An SDK MeterProvider reading into `exporter` periodically, or a no-op provider when there is none.

    Without an exporter (the embedded store takes spans only) recording metrics would be pure cost, so
    the observer gets the API's no-op meter and its per-epoch metric calls do nothing.
    """
    if exporter is None:
        return metrics_api.NoOpMeterProvider()
    interval = _env_number(
        "metric_export_interval_ms", export_interval_ms, OTEL_METRIC_EXPORT_INTERVAL,
        DEFAULT_METRIC_EXPORT_INTERVAL_MS,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval)
    provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
    if set_global:
        metrics_api.set_meter_provider(provider)
    return provider


def shutdown_within(
    tracer_provider: TracerProvider | None,
    meter_provider: metrics_api.MeterProvider | None,
    timeout_s: float,
) -> bool:
    """Flush and shut both providers down, giving up after `timeout_s`; True if everything finished in time.

    Why a helper thread: the SDK's BatchSpanProcessor.force_flush ignores its timeout and an OTLP exporter
    retries a dead collector for its whole export timeout, so a direct call could hold the trainer's exit
    hostage. The thread is a daemon: if it is still busy when the process ends, it is simply dropped
    (what it had not delivered is what a spooling exporter is for).
    """

    def work() -> None:
        # Metrics first: the embedded span exporter owns the pipeline the embedded metric exporter writes through.
        for provider in (meter_provider, tracer_provider):
            if provider is None or not hasattr(provider, "shutdown"):
                continue
            try:
                if hasattr(provider, "force_flush"):
                    provider.force_flush(int(timeout_s * 1000))
                provider.shutdown()
            except Exception as error:  # noqa: BLE001 - shutting down telemetry must not fail the caller
                _log.warning("telemetry shutdown failed: %s", error)

    thread = threading.Thread(target=work, name="pinnprov-capture-shutdown", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()
