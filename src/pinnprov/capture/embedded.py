"""EmbeddedExporter: the in-process OTLP "wire" from the SDK's batch processor to the collector pipeline.

Why encode to OTLP protobuf instead of translating the SDK's span objects directly: the design has exactly
one translation path (OTLP -> PROV records). The embedded default therefore hands the pipeline the very
`ExportTraceServiceRequest` a network receiver would decode, so what the embedded store holds and what a
remote collector would store can never drift apart.

Result mapping (SpanExportResult has only SUCCESS and FAILURE):
- pipeline SUCCESS -> SUCCESS;
- pipeline RETRYABLE (store locked, disk full, pipeline shut down) -> FAILURE, so a spooling wrapper keeps
  the batch and replays it (writes are idempotent by span id);
- pipeline REJECTED, or partly rejected -> SUCCESS with a warning: the pipeline has counted and set those
  spans aside and no retry could ever make them valid, so a spool must not replay them forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pinnprov.capture.fast_encode import encode_spans_fast
from pinnprov.core.export_status import ExportStatus

_log = logging.getLogger(__name__)
_WARN_INTERVAL_S = 30.0


class PipelineResultLike(Protocol):
    """What the exporter reads of `pinnprov.collector.pipeline.PipelineResult` (a frozen dataclass: read-only here)."""

    @property
    def status(self) -> ExportStatus: ...

    @property
    def accepted(self) -> int: ...

    @property
    def rejected(self) -> int: ...

    @property
    def detail(self) -> str: ...


class TracePipeline(Protocol):
    """What the exporter needs from `pinnprov.collector.pipeline.Pipeline`."""

    def handle_traces(self, request: ExportTraceServiceRequest) -> PipelineResultLike: ...

    def force_flush(self, timeout_s: float = 10.0) -> bool: ...

    def shutdown(self) -> None: ...


class EmbeddedExporter(SpanExporter):
    """A SpanExporter that feeds OTLP requests to an in-process pipeline (and, by default, owns it)."""

    def __init__(self, pipeline: TracePipeline, *, owns_pipeline: bool = True) -> None:
        self.pipeline = pipeline
        self._owns = owns_pipeline
        # Serialises export against shutdown: a prompt flush on a helper thread may still be writing when the
        # capture closes, and the pipeline's sinks must not be closed under a running write.
        self._lock = threading.Lock()
        self._shut = False
        self._last_warning = 0.0
        self.spans_rejected = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._shut:
                return SpanExportResult.FAILURE
            try:
                request = encode_spans_fast(spans)  # = encode_spans(spans), at a fraction of the CPU
            except Exception as error:  # noqa: BLE001 - the SDK's own spans always encode; be safe anyway
                self._warn("could not encode %d span(s) as OTLP: %s", len(spans), error)
                return SpanExportResult.FAILURE
            result = self.pipeline.handle_traces(request)
        if result.status is ExportStatus.RETRYABLE:
            self._warn("store did not take %d span(s), will be retried if spooled: %s", len(spans), result.detail)
            return SpanExportResult.FAILURE
        if result.status is ExportStatus.REJECTED or result.rejected:
            self.spans_rejected += result.rejected or len(spans)
            self._warn("pipeline rejected %d span(s): %s", result.rejected or len(spans), result.detail)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with self._lock:
            if self._shut:
                return False
            return bool(self.pipeline.force_flush(timeout_millis / 1000))

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
            if self._owns:
                self.pipeline.shutdown()

    def _warn(self, message: str, *args: object) -> None:
        # A store that stays locked would otherwise log five times a second.
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning >= _WARN_INTERVAL_S else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        _log.log(level, message, *args)
