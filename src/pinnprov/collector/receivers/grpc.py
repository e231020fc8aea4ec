"""OTLP/gRPC receiver: the standard TraceService and MetricsService from opentelemetry-proto.

Any OpenTelemetry SDK or an upstream OpenTelemetry Collector can export here. Status codes follow the OTLP
spec: OK once the request is spooled; UNAVAILABLE with a RetryInfo delay when the collector cannot take it
now (the client retries and keeps the data); UNAUTHENTICATED without the token; RESOURCE_EXHAUSTED for a
request above the size limit (gRPC itself refuses it, before it is decoded); INVALID_ARGUMENT for bytes that
are not the service's request message. The raw request bytes are spooled as received, never re-encoded.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pinnprov.collector.auth import BearerToken, GrpcAuthInterceptor
from pinnprov.collector.receivers.intake import Intake, Verdict, count_items
from pinnprov.core.spool import Signal


def _refuse(context: grpc.ServicerContext, verdict: Verdict) -> None:
    retry = RetryInfo(retry_delay=Duration(seconds=verdict.retry_after_s))
    context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry.SerializeToString()),))
    context.abort(grpc.StatusCode.UNAVAILABLE, verdict.detail)


class _Export:
    """One Export method: parse the raw request once (to validate and count), spool the bytes as received.

    Registered without a request deserializer, so gRPC hands over the wire bytes and nothing is re-encoded
    (the HTTP receiver spools its body the same way).
    """

    def __init__(self, intake: Intake, signal: Signal, request_type: type, response: bytes) -> None:
        self._intake = intake
        self._signal = signal
        self._request_type = request_type
        self._response = response

    def __call__(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        request = self._request_type()
        try:
            request.ParseFromString(payload)
        except (DecodeError, RecursionError) as error:
            self._intake.refuse(self._signal, "malformed", "protobuf")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"request is not a valid {self._request_type.__name__}: {error}")
        verdict = self._intake.accept(self._signal, payload, count_items(self._signal, request))
        if not verdict.accepted:
            _refuse(context, verdict)
        return self._response


def _service(name: str, export: _Export) -> grpc.GenericRpcHandler:
    handler = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
    return grpc.method_handlers_generic_handler(name, {"Export": handler})


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
        self._server.add_generic_rpc_handlers((
            _service(trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
                     _Export(intake, Signal.TRACES, trace_service_pb2.ExportTraceServiceRequest,
                             trace_service_pb2.ExportTraceServiceResponse().SerializeToString())),
            _service(metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
                     _Export(intake, Signal.METRICS, metrics_service_pb2.ExportMetricsServiceRequest,
                             metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())),
        ))
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
