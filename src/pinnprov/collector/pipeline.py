"""The pipeline: OTLP request -> translate -> processors (alert rules) -> every sink, with counters.

One instance serves the embedded exporter (in-process, called from the OTel BatchSpanProcessor thread) and
the gRPC/HTTP receivers (called after their durable spool). It never raises into its caller: every problem
becomes a `PipelineResult`. Status rules, so a spool knows what to do with the request:

- RETRYABLE if any sink said RETRYABLE (or failed unexpectedly): keep the request and replay it later;
  sinks are idempotent by telemetry ids, so the sinks that already wrote it are unaffected by the replay.
- REJECTED if nothing in the request could ever be accepted (undecodable, or every span invalid).
- SUCCESS otherwise, with `rejected` counting the spans refused (OTLP partial success).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pinnprov.collector.counters import Counters
from pinnprov.collector.translate import translate_traces
from pinnprov.collector.translate_metrics import translate_metrics
from pinnprov.store.records import ProvRecord
from pinnprov.store.sink import ExportResult, ExportStatus, Sink

log = logging.getLogger(__name__)

_Request = TypeVar("_Request", bound=Message)

RecordProcessor = Callable[[list[ProvRecord]], list[ProvRecord]]
"""Sees each translated batch and returns *extra* records to write with it (e.g. AlertRecords)."""


@dataclass(frozen=True)
class PipelineResult:
    status: ExportStatus
    accepted: int = 0
    rejected: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.SUCCESS


def _sink_name(sink: object) -> str:
    return str(getattr(sink, "name", type(sink).__name__))


class Pipeline:
    """Routes translated PROV records (from spans and from metric data points) to every sink."""

    def __init__(self, sinks: Sequence[Sink], processors: Sequence[RecordProcessor] = ()) -> None:
        self.sinks = list(sinks)
        self.processors = list(processors)
        self.counters = Counters()
        self._closed = False
        self._close_lock = threading.Lock()

    # --- traces -----------------------------------------------------------------------------------
    def handle_traces(self, request: ExportTraceServiceRequest | bytes) -> PipelineResult:
        """Translate and write one OTLP trace request (a message or its serialized bytes)."""
        try:
            return self._handle_traces(request)
        except Exception as error:  # noqa: BLE001 - the pipeline never raises into a receiver or the trainer
            log.exception("pipeline failed on a trace request")
            self.counters.add("traces.errors")
            return PipelineResult(ExportStatus.RETRYABLE, detail=f"internal error: {type(error).__name__}: {error}")

    def _decoded(
        self, message_type: type[_Request], request: _Request | bytes, signal: str
    ) -> _Request | PipelineResult:
        """Parse raw OTLP bytes once (receivers and the spool hand bytes); undecodable bytes are a rejection."""
        if not isinstance(request, bytes | bytearray | memoryview):
            return request
        message: _Request = message_type()
        try:
            message.ParseFromString(bytes(request))
        except DecodeError as error:
            self.counters.add(f"{signal}.undecodable")
            kind = "trace" if signal == "traces" else "metrics"
            return PipelineResult(ExportStatus.REJECTED, detail=f"undecodable {kind} request: {error}")
        return message

    def _handle_traces(self, request: ExportTraceServiceRequest | bytes) -> PipelineResult:
        if self._closed:
            return PipelineResult(ExportStatus.RETRYABLE, detail="pipeline is shut down")
        decoded = self._decoded(ExportTraceServiceRequest, request, "traces")
        if isinstance(decoded, PipelineResult):
            return decoded
        self.counters.add("traces.requests")
        translation = translate_traces(decoded)
        spans = translation.records
        self.counters.add_many(
            {
                "traces.spans.received": len(spans) + len(translation.rejected) + translation.ignored,
                "traces.spans.accepted": len(spans),
                "traces.spans.rejected": len(translation.rejected),
                "traces.spans.ignored": translation.ignored,
                "traces.attributes.dropped": len(translation.dropped),
            }
        )
        for drop in translation.dropped:  # kept spans that lost an invalid optional attribute, by reason
            self.counters.add(f"traces.attributes.dropped.{drop.reason}")
        rejected = len(translation.rejected)
        details = [f"{r.span_name}: {r.reason}: {r.detail}" for r in translation.rejected[:3]]
        if not spans:
            status = ExportStatus.REJECTED if rejected else ExportStatus.SUCCESS
            return PipelineResult(status, 0, rejected, "; ".join(details))
        batch = list(spans) + self._run_processors(spans)
        status, sink_rejected, sink_details = self._export(batch, len(spans))
        details.extend(sink_details)
        return PipelineResult(status, len(spans) - sink_rejected, rejected + sink_rejected, "; ".join(details))

    def _run_processors(self, records: list[ProvRecord]) -> list[ProvRecord]:
        extra: list[ProvRecord] = []
        for processor in self.processors:
            try:
                extra.extend(processor(list(records)))
            except Exception:  # noqa: BLE001 - a faulty rule must not lose the provenance itself
                log.exception("record processor %r failed; its records are skipped", processor)
                self.counters.add("processors.failed")
        self.counters.add("records.extra", len(extra))
        return extra

    def _export(self, batch: list[ProvRecord], span_count: int) -> tuple[ExportStatus, int, list[str]]:
        """Send the batch to every sink; returns (status, span records rejected by a sink, details)."""
        retry = False
        rejected_spans: set[int] = set()
        details: list[str] = []
        for sink in self.sinks:
            name = _sink_name(sink)
            try:
                result = sink.export(batch)
            except Exception as error:  # noqa: BLE001 - a sink broke its contract; treat as transient
                log.exception("sink %s raised", name)
                result = ExportResult(ExportStatus.RETRYABLE, detail=f"sink raised {type(error).__name__}: {error}")
            self.counters.add(f"sink.{name}.batches")
            self.counters.add(f"sink.{name}.written", result.written)
            if result.status is ExportStatus.RETRYABLE:
                retry = True
                self.counters.add(f"sink.{name}.failed")
                details.append(f"sink {name}: retryable: {result.detail}")
                continue
            if result.rejected or result.status is ExportStatus.REJECTED:
                indices = list(result.rejected) if result.rejected else list(range(len(batch)))
                self.counters.add(f"sink.{name}.rejected", len(indices))
                rejected_spans.update(index for index in indices if index < span_count)
                details.append(f"sink {name}: rejected {len(indices)} record(s): {result.detail}")
        status = ExportStatus.RETRYABLE if retry else ExportStatus.SUCCESS
        return status, len(rejected_spans), details

    # --- metrics ----------------------------------------------------------------------------------
    def handle_metrics(self, request: ExportMetricsServiceRequest | bytes) -> PipelineResult:
        """Translate one OTLP metrics request into metric records and write them to every sink, like spans."""
        try:
            if self._closed:
                return PipelineResult(ExportStatus.RETRYABLE, detail="pipeline is shut down")
            decoded = self._decoded(ExportMetricsServiceRequest, request, "metrics")
            if isinstance(decoded, PipelineResult):
                return decoded
            translation = translate_metrics(decoded)
            self.counters.add_many(
                {
                    "metrics.requests": 1,
                    "metrics.points.received": translation.points,
                    "metrics.points.accepted": translation.accepted,
                    "metrics.points.ignored": translation.ignored,
                    "metrics.rejected": len(translation.rejected),
                }
            )
            for problem in translation.rejected:
                self.counters.add(f"metrics.rejected.{problem.reason}")
            for problem in translation.dropped:
                self.counters.add(f"metrics.attributes.dropped.{problem.reason}")
            rejected = len(translation.rejected)
            details = [f"{r.name}: {r.reason}: {r.detail}" for r in translation.rejected[:3]]
            if not translation.accepted:
                status = ExportStatus.REJECTED if rejected else ExportStatus.SUCCESS
                return PipelineResult(status, 0, rejected, "; ".join(details))
            records = translation.records
            status, sink_rejected, sink_details = self._export(records, len(records))
            details.extend(sink_details)
            accepted = translation.accepted - min(sink_rejected, translation.accepted)
            return PipelineResult(status, accepted, rejected + sink_rejected, "; ".join(details))
        except Exception as error:  # noqa: BLE001
            log.exception("pipeline failed on a metrics request")
            self.counters.add("metrics.errors")
            return PipelineResult(ExportStatus.RETRYABLE, detail=f"internal error: {type(error).__name__}: {error}")

    # --- lifecycle --------------------------------------------------------------------------------
    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Flush every sink; False if any did not finish in time."""
        ok = True
        for sink in self.sinks:
            try:
                ok = bool(sink.force_flush(timeout_s)) and ok
            except Exception:  # noqa: BLE001
                log.exception("sink %s failed to flush", _sink_name(sink))
                ok = False
        return ok

    def shutdown(self) -> None:
        """Shut every sink down once; later requests get RETRYABLE (a spool keeps them)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        for sink in self.sinks:
            try:
                sink.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("sink %s failed to shut down", _sink_name(sink))
