"""What both receivers do with a decoded request: make it durable, count it, and say what to answer.

A request is acknowledged only once it is in the spool (fsynced). When the spool is full (the sinks fall
behind) or the disk fails, the answer is "retry later" (gRPC UNAVAILABLE / HTTP 503 with a delay), so the
client keeps the data: nothing is accepted that could be lost, and memory stays bounded under overload.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pinnprov.collector.counters import Counters
from pinnprov.core.spool import Signal, Spool, SpoolFull

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    detail: str = ""
    retry_after_s: int = 0  # > 0: a retryable refusal


def count_items(signal: Signal, request: ExportTraceServiceRequest | ExportMetricsServiceRequest) -> int:
    """Spans of a trace request, data points of a metrics request."""
    if signal is Signal.TRACES:
        return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    points = 0
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                if kind:
                    points += len(getattr(metric, kind).data_points)
    return points


class Intake:
    """Shared by the receivers; thread-safe (the spool serialises appends)."""

    def __init__(self, spool: Spool, counters: Counters, retry_after_s: int = 1) -> None:
        self.spool = spool
        self.counters = counters
        self.retry_after_s = retry_after_s
        self._last_error_log = 0.0

    def accept(self, signal: Signal, payload: bytes, items: int) -> Verdict:
        name = signal.name.lower()
        try:
            self.spool.append(signal, payload)
        except SpoolFull as error:
            self.refuse(signal, "overload")
            return Verdict(False, f"collector queue is full, retry later ({error})", self.retry_after_s)
        except OSError as error:
            self.refuse(signal, "spool_error")
            now = time.monotonic()
            if now - self._last_error_log > 10:  # a full disk must not flood the log too
                self._last_error_log = now
                log.error("cannot write the spool (%s); answering 'retry later'", error)
            return Verdict(False, f"collector cannot persist the request: {error.strerror or error}", 5)
        self.counters.add_many({f"received.{name}.requests": 1, f"received.{name}.items": items,
                                f"received.{name}.bytes": len(payload)})
        return Verdict(True)

    def aborted(self, signal: Signal | None) -> None:
        """Count a request the client gave up on mid-body (or that a framing error ended): not a refusal."""
        self.counters.add(f"aborted.{signal.name.lower() if signal is not None else 'other'}")

    def refuse(self, signal: Signal | None, reason: str, kind: str = "") -> None:
        """Count a refused request by reason (unauthenticated, too_large, malformed, unsupported, overload,
        timeout, ...) and, when given, by the finer kind (`malformed` as protobuf, json, json_depth, gzip, ...)."""
        name = signal.name.lower() if signal is not None else "other"
        if kind:
            self.counters.add_many({f"refused.{name}.{reason}": 1, f"refused_kind.{name}.{reason}.{kind}": 1})
        else:
            self.counters.add(f"refused.{name}.{reason}")
