"""OTLP/gRPC receiver: the standard TraceService and MetricsService from opentelemetry-proto.

Any OpenTelemetry SDK or an upstream OpenTelemetry Collector can export here. Status codes follow the OTLP
spec: OK once the request is spooled; UNAVAILABLE with a RetryInfo delay when the collector cannot take it
now (the client retries and keeps the data); UNAUTHENTICATED without the token; RESOURCE_EXHAUSTED for a
request above the size limit (gRPC itself refuses it, before it is decoded).
"""

from __future__ import annotations

from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collector.auth import BearerToken, GrpcAuthInterceptor
from collector.receivers.intake import Intake, Verdict, count_items
from collector.spool import Signal


def _refuse(context: grpc.ServicerContext, verdict: Verdict) -> None:
    retry = RetryInfo(retry_delay=Duration(seconds=verdict.retry_after_s))
    context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry.SerializeToString()),))
    context.abort(grpc.StatusCode.UNAVAILABLE, verdict.detail)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,  # noqa: N802 - gRPC's name
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        verdict = self._intake.accept(Signal.TRACES, request.SerializeToString(), count_items(Signal.TRACES, request))
        if not verdict.accepted:
            _refuse(context, verdict)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def Export(self, request: metrics_service_pb2.ExportMetricsServiceRequest,  # noqa: N802
               context: grpc.ServicerContext) -> metrics_service_pb2.ExportMetricsServiceResponse:
        verdict = self._intake.accept(Signal.METRICS, request.SerializeToString(),
                                      count_items(Signal.METRICS, request))
        if not verdict.accepted:
            _refuse(context, verdict)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcReceiver:
    """A gRPC server bound to `endpoint`; `port` is the bound port (useful with port 0)."""

    def __init__(
        self,
        endpoint: str,
        intake: Intake,
        *,
        token: BearerToken,
        max_request_bytes: int,
        workers: int = 8,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        interceptors = [GrpcAuthInterceptor(token, lambda: intake.refuse(None, "unauthenticated"))] \
            if token.required else []
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", max_request_bytes),
                ("grpc.max_send_message_length", 4 << 20),
                ("grpc.so_reuseport", 0),  # a second collector on the same port must fail, not share it
            ],
            maximum_concurrent_rpcs=workers * 4,
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(intake), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(intake), self._server)
        try:
            if credentials is not None:
                self.port = self._server.add_secure_port(endpoint, credentials)
            else:
                self.port = self._server.add_insecure_port(endpoint)
        except RuntimeError:  # newer grpcio raises instead of returning port 0
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {endpoint} (address in use or not available)")
        host = endpoint.rpartition(":")[0]
        self.endpoint = f"{host}:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float = 5.0) -> None:
        self._server.stop(grace_s).wait()
