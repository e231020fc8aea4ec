"""One training process's provenance capture: exporters per destination, disk spools, providers, the observer,
and a bounded flush at the end that reports what was delivered.

Export is asynchronous (BatchSpanProcessor threads); the training thread only creates spans. Every destination
is wrapped in a disk spool (pinnprov.capture.spool_exporter; PINNPROV_SPOOL=0 turns it off): a batch the
destination refuses (collector down, store locked) is kept on disk and replayed in the background, on the next
start, or by `pinnprov flush`. On exit the providers are flushed and shut down within the settings' timeout, so
a dead collector delays the trainer's exit by at most that long.

Spool layout: <spool root>/<kind>-<sha256(destination)[:12]>/<host>-<pid>-<id>/ — one root per destination, so
a later capture to the same destination adopts exactly the spools meant for it.

The embedded store's exporter is handed in (`open_store_exporter`) by the composition root: this layer never
imports the collector.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from pinnprov.capture.capture_settings import CaptureSettings
from pinnprov.capture.provider import RunIdGenerator
from pinnprov.capture.system_metrics import SystemMetricsSettings
from pinnprov.core.urls import redact
from pinnprov.pinn.observer import TrainingObserver

if TYPE_CHECKING:
    from pinnprov.capture.provider import DeliveryCounter
    from pinnprov.capture.system_metrics import SystemSampler

log = logging.getLogger(__name__)

StoreExporterOpener = Callable[[str], SpanExporter]
"""Store URL -> a span exporter writing that store in process (the embedded pipeline)."""


@dataclass
class CaptureStats:
    """Filled in when the capture closes: what was emitted, delivered, dropped (pass one to `open_capture`)."""

    destinations: list[str] = field(default_factory=list)  # e.g. ["sqlite:///pinnprov.db", "otlp+grpc://..."]
    spans_ended: int = 0
    exported: dict[str, int] = field(default_factory=dict)  # per destination: spans delivered or kept in the spool
    failed: dict[str, int] = field(default_factory=dict)  # per destination: spans whose export failed
    dropped: dict[str, int] = field(default_factory=dict)  # per destination: spans that never reached export
    closed_in_time: bool = True


def _with_spool(exporter: SpanExporter, destination: str, root: Path | None) -> SpanExporter:
    """Wrap in the disk-spooling exporter, one spool root per destination.

    Why per destination: a spooling exporter adopts and replays spools that dead processes left under its
    root, so spans meant for the SQLite file must never sit where the OTLP exporter would pick them up.
    """
    if root is None:
        return exporter
    from pinnprov.capture.spool_exporter import SpoolingSpanExporter

    kind = destination.split(":", 1)[0].split("+", 1)[0] or "store"
    digest = hashlib.sha256(destination.encode()).hexdigest()[:12]
    return SpoolingSpanExporter(exporter, Path(root) / f"{kind}-{digest}")


def _exporters(
    settings: CaptureSettings, open_store_exporter: StoreExporterOpener
) -> tuple[list[tuple[str, SpanExporter]], MetricExporter | None]:
    """The span exporters by destination name (embedded store first) and the OTLP metric exporter, if any."""
    from pinnprov.capture import otlp

    exporters: list[tuple[str, SpanExporter]] = []
    metric_exporter = None
    if settings.store_url is not None:
        exporters.append((redact(settings.store_url), open_store_exporter(settings.store_url)))
    destination = settings.destination
    if destination is not None:
        headers, timeout_s, ca_file = destination.headers, settings.export_timeout_s, destination.ca_file
        try:
            exporters.append((destination.name, otlp.span_exporter(
                destination.endpoint, protocol=destination.protocol, headers=headers, timeout_s=timeout_s,
                ca_file=ca_file)))
            # The metrics endpoint may differ (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT): only an explicit protocol
            # applies to it as given, otherwise it is inferred for that endpoint.
            metric_exporter = otlp.metric_exporter(destination.endpoint, protocol=settings.protocol, headers=headers,
                                                   timeout_s=timeout_s, ca_file=ca_file)
        except Exception:
            for _, exporter in exporters:
                exporter.shutdown()
            raise
    return exporters, metric_exporter


def _metric_exporter(exporters: list[tuple[str, SpanExporter]], otlp_exporter: MetricExporter | None,
                     run_id: Callable[[], str | None]) -> MetricExporter | None:
    """Where metrics go: the embedded store's pipeline (the span exporter's, when it has one) and the OTLP
    collector; every export carries the current run's id on its resource (pinnprov/capture/metrics_export.py)."""
    from pinnprov.capture.metrics_export import EmbeddedMetricExporter, FanoutMetricExporter, RunResourceExporter

    targets: list[MetricExporter] = []
    for _, exporter in exporters:
        pipeline = getattr(exporter, "pipeline", None)
        if pipeline is not None and hasattr(pipeline, "handle_metrics"):
            targets.append(EmbeddedMetricExporter(pipeline))
    if otlp_exporter is not None:
        targets.append(otlp_exporter)
    if not targets:
        return None
    return RunResourceExporter(targets[0] if len(targets) == 1 else FanoutMetricExporter(targets), run_id)


@contextmanager
def capture_session(
    settings: CaptureSettings, open_store_exporter: StoreExporterOpener, stats: CaptureStats | None = None,
    *, import_tensorflow: bool = True, system_metrics: SystemMetricsSettings | None = None,
) -> Iterator[list[TrainingObserver]]:
    """Yield the provenance observers for `settings`; flush and shut them down on exit, filling `stats`.

    `import_tensorflow=False`: the resource names TensorFlow's version and devices only if the process has
    already loaded it (a PyTorch or JAX loop does not pay for importing TensorFlow).
    `system_metrics`: overrides the settings' `system_metrics` / `system_metrics_interval_s` (the trainer's system
    metrics, pinnprov/capture/system_metrics.py; on by default, every 5 s).
    """
    from pinnprov.capture.observer import ProvenanceObserver
    from pinnprov.capture.provider import (
        DeliveryCounter,
        batch_processor,
        build_meter_provider,
        build_tracer_provider,
        shutdown_within,
    )
    from pinnprov.capture.resource import build_resource

    # validates the service name before anything starts
    resource = build_resource(settings.service_name, import_tensorflow=import_tensorflow)
    system = system_metrics if system_metrics is not None else SystemMetricsSettings(
        settings.system_metrics, settings.system_metrics_interval_s)
    exporters, otlp_metric_exporter = _exporters(settings, open_store_exporter)
    run_ids = RunIdGenerator()  # the tracer provider's: it learns each run's id at the run's start
    metric_exporter = _metric_exporter(exporters, otlp_metric_exporter, lambda: run_ids.run_id)
    # The counter is outermost: it sees every span the queue hands over, whatever a spool does with it.
    destinations = [(name, DeliveryCounter(_with_spool(exporter, name, settings.spool_root)))
                    for name, exporter in exporters]
    try:
        processors = [batch_processor(counter, schedule_delay_ms=settings.schedule_delay_ms)
                      for _, counter in destinations]
        tracer_provider = build_tracer_provider(processors, resource, set_global=settings.set_global,
                                                id_generator=run_ids)
        # System metrics are sampled when the reader collects: it collects at their interval unless
        # OTEL_METRIC_EXPORT_INTERVAL says otherwise.
        interval_ms = system.interval_s * 1000 if system.enabled and not os.environ.get(
            "OTEL_METRIC_EXPORT_INTERVAL") else None
        meter_provider = build_meter_provider(metric_exporter, resource, export_interval_ms=interval_ms,
                                              set_global=settings.set_global)
        sampler = _start_system_metrics(meter_provider, system)
    except BaseException:  # e.g. a bad OTEL_BSP_* value: release the store and the sockets, then report it
        for _, counter in destinations:
            counter.shutdown()
        if metric_exporter is not None:
            metric_exporter.shutdown()
        raise
    observer = ProvenanceObserver(tracer_provider, meter_provider, settings.every)
    log.info("provenance capture to %s (every %d epoch(s))", ", ".join(name for name, _ in destinations),
             settings.every)
    try:
        yield [observer]
    finally:
        in_time = shutdown_within(tracer_provider, meter_provider, settings.shutdown_timeout_s)
        if sampler is not None:
            sampler.close()
        _report(observer.spans_ended, destinations, in_time, settings.shutdown_timeout_s, stats)


def _start_system_metrics(meter_provider: Any, system: SystemMetricsSettings) -> SystemSampler | None:
    """Register the system metrics' observable gauges (nothing without a metrics destination or when off)."""
    if not system.enabled or not hasattr(meter_provider, "force_flush"):  # the API's no-op provider
        return None
    from pinnprov.capture.system_metrics import SystemSampler, register
    from pinnprov.core import vocabulary as v

    sampler = SystemSampler()
    register(meter_provider.get_meter(v.SYSTEM_METRICS_SCOPE), sampler)
    log.info("system metrics every %gs%s", system.interval_s,
             "" if sampler.gpus.available else f" (no GPU metrics: {sampler.gpus.reason})")
    return sampler


def _report(spans_ended: int, destinations: list[tuple[str, DeliveryCounter]], in_time: bool, timeout: float,
            stats: CaptureStats | None) -> None:
    stats = stats if stats is not None else CaptureStats()
    stats.spans_ended, stats.closed_in_time = spans_ended, in_time
    for name, counter in destinations:
        counts = counter.counts
        stats.destinations.append(name)
        stats.exported[name] = counts.exported
        stats.failed[name] = counts.failed
        stats.dropped[name] = max(0, spans_ended - counts.exported - counts.failed)
        if counts.failed or stats.dropped[name]:
            log.warning(
                "provenance to %s incomplete: %d of %d span(s) delivered, %d failed, %d not exported%s",
                name, counts.exported, spans_ended, counts.failed, stats.dropped[name],
                "" if in_time else f" (gave up after {timeout:g}s)",
            )
