"""The OTLP/HTTP receiver as a Starlette app: POST /v1/traces and /v1/metrics, GET /healthz and /metrics-json,
and extra routes (remote steering under /v1/steering/) on the same port.

Answers follow the OTLP/HTTP spec, with a google.rpc.Status body in the request's encoding (protobuf or
JSON): 400 for a body that does not decode, 401 without the token, 413 past the size limit, 415 for an
unknown content type or encoding, 408 for a client that stalls, 503 + Retry-After when the collector cannot
take the request now (the client keeps it). Every refusal is counted by reason and kind (Intake.refuse).

Why the work is split the way it is: the event loop only moves bytes. Decoding, inflating, spooling (write +
fsync), health reports and steering (store I/O) run in worker threads, so one slow disk or one 16 MB body
never delays another client's request; at most `max_concurrent` exports hold a body in memory at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pinnprov.collector.auth import BearerToken
from pinnprov.collector.receivers import otlp_json
from pinnprov.collector.receivers.http_body import (
    Refusal,
    check_declared_length,
    check_encoding,
    decompress,
    read_limited,
)
from pinnprov.collector.receivers.intake import Intake, Verdict, count_items
from pinnprov.core.spool_format import Signal

log = logging.getLogger(__name__)

ExtraRoute = Callable[[str, str, bytes], "tuple[int, bytes] | None"]
"""(method, path, body) -> (status, JSON body), or None if the route does not handle this path. May block."""

SIGNAL_PATHS = {"/v1/traces": Signal.TRACES, "/v1/metrics": Signal.METRICS}
_MESSAGES: dict[Signal, tuple[type[Message], bytes]] = {
    Signal.TRACES: (ExportTraceServiceRequest, ExportTraceServiceResponse().SerializeToString()),
    Signal.METRICS: (ExportMetricsServiceRequest, ExportMetricsServiceResponse().SerializeToString()),
}
PROTOBUF = ("application/x-protobuf", "application/protobuf")
JSON = "application/json"
_GRPC_CODE = {400: 3, 401: 16, 404: 5, 405: 12, 408: 4, 413: 8, 415: 3, 503: 14}  # HTTP -> google.rpc.Code
SLOT_WAIT_S = 10.0
"""How long an export waits for one of the `max_concurrent` slots before it is told to retry later."""


@dataclass(frozen=True)
class AppSettings:
    intake: Intake
    token: BearerToken
    max_request_bytes: int
    health: Callable[[], tuple[bool, dict[str, Any]]]
    metrics: Callable[[], dict[str, Any]]
    routes: Sequence[ExtraRoute] = ()
    max_concurrent: int = 16
    body_timeout_s: float = 30.0
    drain_limit_bytes: int = 64 << 20  # the server's: a declared body longer than this is refused with a close


def media_type(request_headers: Mapping[str, str]) -> str:
    return str(request_headers.get("content-type", "")).split(";")[0].strip().lower()


def status_response(status: int, message: str, json_body: bool, headers: dict[str, str] | None = None) -> Response:
    """An OTLP error answer: google.rpc.Status, as JSON or protobuf like the request."""
    rpc_status = Status(code=_GRPC_CODE.get(status, 2), message=message)
    if json_body:
        return Response(otlp_json.dumps(rpc_status), status, headers, JSON)
    return Response(rpc_status.SerializeToString(), status, headers, PROTOBUF[0])


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, sort_keys=True).encode(), status, headers, JSON)


def _refusal_headers(refusal: Refusal, retry_after_s: int) -> dict[str, str]:
    headers = {"Connection": "close"} if refusal.close else {}
    if refusal.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if refusal.status == 503:
        headers["Retry-After"] = str(retry_after_s)
    return headers


def decode_request(signal: Signal, body: bytes, content_type: str, encoding: str, limit: int) -> tuple[bytes, int]:
    """(canonical protobuf bytes to spool, items) for one export body; Refusal if it is not a valid request.

    Runs in a worker thread: inflating and parsing 16 MB costs tens of milliseconds of CPU.
    """
    request_type = _MESSAGES[signal][0]
    body = decompress(body, encoding, limit)
    request = request_type()
    if content_type in PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as error:  # upb refuses deep nesting with a DecodeError
            raise Refusal(400, f"body is not a valid {request_type.__name__}: {error}", "malformed",
                          "protobuf") from None
        payload = body  # the bytes as they came (inflated): the spool keeps what the client sent
    else:
        try:
            otlp_json.parse(body, request)
        except otlp_json.TooDeep as error:
            raise Refusal(400, f"body is not valid OTLP/JSON: {error}", "malformed", "json_depth") from None
        except ValueError as error:
            raise Refusal(400, f"body is not valid OTLP/JSON: {error}", "malformed", "json") from None
        payload = request.SerializeToString()
    return payload, count_items(signal, request)


class OtlpHttpApp:
    """Builds the ASGI app; one instance per receiver."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self._slots: anyio.CapacityLimiter | None = None  # created inside the event loop that uses it
        routes = [
            Route("/v1/traces", self._traces, methods=["POST"]),
            Route("/v1/metrics", self._metrics_export, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics-json", self._metrics_json, methods=["GET"]),
            Route("/v1/steering/{rest:path}", self._extra, methods=["GET", "POST"]),
        ]
        handlers = {404: self._not_found, 405: self._not_allowed}
        self.app: ASGIApp = _Authenticate(Starlette(routes=routes, exception_handlers=handlers),
                                          settings.token, settings.intake)

    # --- exports ----------------------------------------------------------------------------------
    async def _traces(self, request: Request) -> Response:
        return await self._export(request, Signal.TRACES)

    async def _metrics_export(self, request: Request) -> Response:
        return await self._export(request, Signal.METRICS)

    def _slots_limiter(self) -> anyio.CapacityLimiter:
        if self._slots is None:
            self._slots = anyio.CapacityLimiter(self.settings.max_concurrent)
        return self._slots

    async def _export(self, request: Request, signal: Signal) -> Response:
        settings = self.settings
        content_type = media_type(request.headers)
        json_body = content_type == JSON
        try:
            if content_type not in PROTOBUF and content_type != JSON:
                raise Refusal(415, f"unsupported Content-Type {content_type!r} (use application/x-protobuf or "
                                   "application/json)", "unsupported", "content_type")
            encoding = request.headers.get("content-encoding", "").strip().lower()
            check_encoding(encoding)
            check_declared_length(request.headers.get("content-length"), settings.max_request_bytes,
                                  settings.drain_limit_bytes)
            verdict = await self._decode_and_spool(request, signal, content_type, encoding)
        except Refusal as refusal:
            settings.intake.refuse(signal, refusal.reason, refusal.kind)
            headers = _refusal_headers(refusal, settings.intake.retry_after_s)
            return status_response(refusal.status, str(refusal), json_body, headers)
        except ClientDisconnect:
            settings.intake.aborted(signal)
            return Response(b"", 400)  # nobody will read it; the server drops it
        if not verdict.accepted:
            return status_response(503, verdict.detail, json_body, {"Retry-After": str(verdict.retry_after_s)})
        if json_body:
            return Response(b"{}", 200, media_type=JSON)  # an empty Export*ServiceResponse in OTLP/JSON
        return Response(_MESSAGES[signal][1], 200, media_type=PROTOBUF[0])

    async def _decode_and_spool(self, request: Request, signal: Signal, content_type: str, encoding: str) -> Verdict:
        settings = self.settings
        slots = self._slots_limiter()
        with anyio.move_on_after(SLOT_WAIT_S) as waited:
            await slots.acquire()  # cancellation-safe: either acquired or cancelled, never half
        if waited.cancelled_caught:
            raise Refusal(503, "collector busy, retry later", "overload", "slots")
        try:
            body = await read_limited(request.stream(), settings.max_request_bytes, settings.body_timeout_s)

            def work() -> Verdict:
                payload, items = decode_request(signal, body, content_type, encoding, settings.max_request_bytes)
                return settings.intake.accept(signal, payload, items)

            return await anyio.to_thread.run_sync(work)
        finally:
            slots.release()

    # --- health, self-metrics, extra routes -------------------------------------------------------
    async def _healthz(self, request: Request) -> Response:
        healthy, report = await anyio.to_thread.run_sync(self.settings.health)
        return json_response(200 if healthy else 503, report)

    async def _metrics_json(self, request: Request) -> Response:
        return json_response(200, await anyio.to_thread.run_sync(self.settings.metrics))

    async def _extra(self, request: Request) -> Response:
        try:
            body = b""
            if request.method == "POST":
                check_declared_length(request.headers.get("content-length"), self.settings.max_request_bytes,
                                      self.settings.drain_limit_bytes)
                body = await read_limited(request.stream(), self.settings.max_request_bytes,
                                          self.settings.body_timeout_s)
        except Refusal as refusal:
            self.settings.intake.refuse(None, refusal.reason, refusal.kind)
            return json_response(refusal.status, {"error": str(refusal)}, _refusal_headers(refusal, 1))
        except ClientDisconnect:
            return Response(b"", 400)
        path = request.url.path

        def route() -> tuple[int, bytes] | None:
            for extra in self.settings.routes:
                answer = extra(request.method, path, body)
                if answer is not None:
                    return answer
            return None

        answer = await anyio.to_thread.run_sync(route)
        if answer is None:
            return json_response(404, {"error": f"no such resource {path[:200]!r}"})
        return Response(answer[1], answer[0], media_type=JSON)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        self.settings.intake.refuse(SIGNAL_PATHS.get(request.url.path), "not_found")
        return json_response(404, {"error": f"no such resource {request.url.path[:200]!r}"})

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        allowed = exc.headers.get("Allow", "") if isinstance(exc, HTTPException) and exc.headers else ""
        self.settings.intake.refuse(SIGNAL_PATHS.get(request.url.path), "method_not_allowed")
        return json_response(405, {"error": f"{request.method} is not allowed on {request.url.path[:200]!r}"},
                             {"Allow": allowed} if allowed else None)


class _Authenticate:
    """Pure ASGI middleware: every path but /healthz needs the bearer token (when one is configured).

    Before routing, so an unknown path tells nobody without the token whether it exists.
    """

    def __init__(self, app: ASGIApp, token: BearerToken, intake: Intake) -> None:
        self.app, self.token, self.intake = app, token, intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token.required or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        authorization = next((value.decode("latin-1") for name, value in scope["headers"]
                              if name == b"authorization"), None)
        if self.token.allows(authorization):
            await self.app(scope, receive, send)
            return
        signal = SIGNAL_PATHS.get(scope["path"])
        self.intake.refuse(signal, "unauthenticated")
        headers = {"WWW-Authenticate": "Bearer"}
        if signal is None:
            response = json_response(401, {"error": "missing or wrong bearer token"}, headers)
        else:
            content_type = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"content-type"), "")
            response = status_response(401, "missing or wrong bearer token",
                                       content_type.split(";")[0].strip().lower() == JSON, headers)
        await response(scope, receive, send)
