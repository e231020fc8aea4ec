"""Metric exporters of a capture: the run id on the resource, the embedded store, and both at once.

- `RunResourceExporter`: a process may train several runs under one MeterProvider, and the run id is known only
  when a run starts, so it cannot be fixed in the provider's resource at creation. This wrapper puts the current
  run's id (`pinn.run.id`, from the tracer's RunIdGenerator, which is handed each run's id at its start) on the
  resource of every export, so the stores file the points under their run. Before the first run the resource
  goes out as it is (the points are kept under their resource).
- `EmbeddedMetricExporter`: the in-process "wire" to the collector's pipeline for metrics, like
  pinnprov/capture/embedded.py for spans (the same OTLP request a network receiver would decode).
- `FanoutMetricExporter`: an embedded store and an OTLP collector together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData, ResourceMetrics
from opentelemetry.sdk.resources import Resource

from pinnprov.capture.embedded import PipelineResultLike
from pinnprov.core import vocabulary as v
from pinnprov.core.export_status import ExportStatus

log = logging.getLogger(__name__)


class MetricsPipeline(Protocol):
    """What the embedded metric exporter needs from `pinnprov.collector.pipeline.Pipeline`."""

    def handle_metrics(self, request: ExportMetricsServiceRequest) -> PipelineResultLike: ...


def _like(inner: MetricExporter) -> dict[str, Any]:
    """The inner exporter's preferred temporality and aggregation (the reader asks the outermost exporter)."""
    return {"preferred_temporality": getattr(inner, "_preferred_temporality", None),
            "preferred_aggregation": getattr(inner, "_preferred_aggregation", None)}


class RunResourceExporter(MetricExporter):
    """Adds `pinn.run.id` = `run_id()` (when not None) to the resource of every export of `inner`."""

    def __init__(self, inner: MetricExporter, run_id: Callable[[], str | None]) -> None:
        super().__init__(**_like(inner))
        self.inner = inner
        self._run_id = run_id

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        run_id = self._run_id()
        if run_id:
            extra = Resource({v.RUN_ID: run_id})
            metrics_data = MetricsData([
                ResourceMetrics(rm.resource.merge(extra), rm.scope_metrics, rm.schema_url)
                for rm in metrics_data.resource_metrics])
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class EmbeddedMetricExporter(MetricExporter):
    """Feeds metric exports to an in-process pipeline (which the span exporter owns and shuts down)."""

    def __init__(self, pipeline: MetricsPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.points_rejected = 0

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self.pipeline.handle_metrics(encode_metrics(metrics_data))
        except Exception as error:  # noqa: BLE001 - metrics never break training
            log.warning("embedded metrics export failed: %s", error)
            return MetricExportResult.FAILURE
        if result.status is ExportStatus.RETRYABLE:
            log.debug("store did not take metric points: %s", result.detail)
            return MetricExportResult.FAILURE
        if result.rejected:
            self.points_rejected += result.rejected
            log.warning("pipeline rejected %d metric point(s): %s", result.rejected, result.detail)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class FanoutMetricExporter(MetricExporter):
    """Every export to each exporter (the first one's preferences rule); FAILURE if any failed."""

    def __init__(self, exporters: Sequence[MetricExporter]) -> None:
        super().__init__(**_like(exporters[0]))
        self.exporters = list(exporters)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        results = []
        for exporter in self.exporters:
            try:
                results.append(exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs))
            except Exception as error:  # noqa: BLE001
                log.warning("metric exporter %s raised: %s", type(exporter).__name__, error)
                results.append(MetricExportResult.FAILURE)
        ok = all(result is MetricExportResult.SUCCESS for result in results)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return all([exporter.force_flush(timeout_millis) for exporter in self.exporters])

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        for exporter in self.exporters:
            exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
