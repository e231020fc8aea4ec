"""OTLP/HTTP receiver: POST /v1/traces and /v1/metrics (protobuf or JSON, optionally gzip), plus
GET /healthz, GET /metrics-json and any extra routes (remote steering) on the same port.

Refusals follow the OTLP spec, each with a google.rpc.Status body in the request's encoding: 400 for a body
that does not decode, 401 without the token, 411/413 for a missing or too large Content-Length (checked
before reading the body, so an oversized request costs nothing), 415 for an unknown content type or
encoding, 503 + Retry-After when the collector cannot take the request now (the client keeps it).
Standard library server, one thread per connection, keep-alive; concurrency is bounded by a semaphore.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import zlib
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ssl import SSLContext
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.auth import BearerToken
from collector.config import split_endpoint
from collector.receivers import otlp_json
from collector.receivers.intake import Intake, count_items
from contract.spool import Signal

log = logging.getLogger("pinnprov.collector.http")

Route = Callable[[str, str, bytes], "tuple[int, bytes] | None"]
"""(method, path, body) -> (status, JSON body), or None if the route does not handle this path."""

_SIGNALS = {
    "/v1/traces": (Signal.TRACES, ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (Signal.METRICS, ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}
_PROTOBUF = ("application/x-protobuf", "application/protobuf")
_JSON = "application/json"
_GRPC_CODE = {400: 3, 401: 16, 404: 5, 411: 3, 413: 8, 415: 3, 503: 14}  # HTTP -> google.rpc.Code


class _Refusal(Exception):
    def __init__(self, status: int, message: str, reason: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.reason, self.close = status, reason, close


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _Refusal(415, f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)", "unsupported")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 32))
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise _Refusal(400, f"body is not valid {encoding}: {error}", "malformed") from None
    if len(data) > limit:  # a small compressed body that inflates beyond the limit (a zip bomb)
        raise _Refusal(413, f"decompressed request exceeds the {limit}-byte limit", "too_large")
    return data


class HttpReceiver:
    def __init__(
        self,
        endpoint: str,
        intake: Intake,
        *,
        token: BearerToken,
        max_request_bytes: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], dict[str, Any]],
        routes: Sequence[Route] = (),
        ssl_context: SSLContext | None = None,
        max_concurrent: int = 16,
    ) -> None:
        self.intake, self.token, self.max_request_bytes = intake, token, max_request_bytes
        self.health, self.metrics, self.routes = health, metrics, list(routes)
        self._slots = threading.BoundedSemaphore(max_concurrent)
        host, port = split_endpoint(endpoint, "http_endpoint")
        receiver = self

        class Handler(_Handler):
            owner = receiver

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        self._server = server_class((host, port), Handler)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.endpoint = f"{endpoint.rpartition(':')[0]}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: HttpReceiver
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stalls mid-request must not hold a thread forever
    server_version = "pinnprov-collector"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.client_address[0], *args)

    # --- responses --------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None,
              close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_status(self, status: int, message: str, json_body: bool, headers: dict[str, str] | None = None,
                     close: bool = False) -> None:
        rpc_status = Status(code=_GRPC_CODE.get(status, 2), message=message)
        if json_body:
            self._send(status, otlp_json.dumps(rpc_status), _JSON, headers, close)
        else:
            self._send(status, rpc_status.SerializeToString(), _PROTOBUF[0], headers, close)

    # --- request parts ----------------------------------------------------------------------------
    def _authorized(self) -> bool:
        return self.owner.token.allows(self.headers.get("Authorization"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise _Refusal(411, "chunked bodies are not accepted; send Content-Length", "malformed", close=True)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _Refusal(411, "Content-Length is required", "malformed", close=True)
        if not length_text.strip().isdigit():
            raise _Refusal(400, f"bad Content-Length {length_text!r}", "malformed", close=True)
        length = int(length_text)
        if length > self.owner.max_request_bytes:
            raise _Refusal(413, f"request of {length} bytes exceeds the {self.owner.max_request_bytes}-byte limit",
                           "too_large", close=True)
        return self.rfile.read(length)

    # --- methods ----------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        target = _SIGNALS.get(path)
        json_body = self.headers.get("Content-Type", "").split(";")[0].strip().lower() == _JSON
        signal = target[0] if target else None
        try:
            if not self._authorized():
                raise _Refusal(401, "missing or wrong bearer token", "unauthenticated", close=True)
            if target is None:
                self._extra_route("POST", path, self._read_body())
                return
            if not self.owner._slots.acquire(timeout=10):
                raise _Refusal(503, "collector busy, retry later", "overload", close=True)
            try:
                self._export(*target, json_body)
            finally:
                self.owner._slots.release()
        except _Refusal as refusal:
            self.owner.intake.refuse(signal, refusal.reason)
            headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
            if refusal.status == 503:
                headers["Retry-After"] = str(self.owner.intake.retry_after_s)
            self._send_status(refusal.status, str(refusal), json_body, headers, refusal.close)

    def _export(self, signal: Signal, request_type: type, response_type: type, json_body: bool) -> None:
        body = self._read_body()
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        body = _decompress(body, encoding, self.owner.max_request_bytes)
        request = request_type()
        if content_type in _PROTOBUF:
            try:
                request.ParseFromString(body)
            except DecodeError as error:
                raise _Refusal(400, f"body is not a valid {request_type.__name__}: {error}", "malformed") from None
            payload = body  # already the canonical bytes: spool them as they came
        elif content_type == _JSON:
            try:
                otlp_json.parse(body, request)
            except ValueError as error:
                raise _Refusal(400, f"body is not valid OTLP/JSON: {error}", "malformed") from None
            payload = request.SerializeToString()
        else:
            raise _Refusal(415, f"unsupported Content-Type {content_type!r} (use application/x-protobuf or "
                                "application/json)", "unsupported")
        verdict = self.owner.intake.accept(signal, payload, count_items(signal, request))
        if not verdict.accepted:
            self._send_status(503, verdict.detail, json_body, {"Retry-After": str(verdict.retry_after_s)})
            return
        response = response_type()
        if json_body:
            self._send(200, otlp_json.dumps(response), _JSON)
        else:
            self._send(200, response.SerializeToString(), _PROTOBUF[0])

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/healthz":  # open, like a load balancer's probe expects; tells no secrets
            healthy, report = self.owner.health()
            self._send(200 if healthy else 503, json.dumps(report).encode(), _JSON)
            return
        if not self._authorized():
            self.owner.intake.refuse(None, "unauthenticated")
            self._send(401, b'{"error":"missing or wrong bearer token"}', _JSON, {"WWW-Authenticate": "Bearer"})
            return
        if path == "/metrics-json":
            self._send(200, json.dumps(self.owner.metrics(), sort_keys=True).encode(), _JSON)
            return
        try:
            self._extra_route("GET", path, b"")
        except _Refusal as refusal:
            self._send_status(refusal.status, str(refusal), True, close=refusal.close)

    def _extra_route(self, method: str, path: str, body: bytes) -> None:
        for route in self.owner.routes:
            answer = route(method, path, body)
            if answer is not None:
                self._send(answer[0], answer[1], _JSON)
                return
        self._send(404, json.dumps({"error": f"no such resource {path[:200]!r}"}).encode(), _JSON)
