"""OTLP/HTTP receiver: POST /v1/traces and /v1/metrics (protobuf or JSON, optionally gzip), plus
GET /healthz, GET /metrics-json and extra routes (remote steering) on the same port.

Served by uvicorn (httptools: HTTP/1.1 keep-alive, chunked request bodies, pipelining) on an asyncio event
loop of its own, with a Starlette app (receivers/http_app.py) in front of the shared Intake. The OTLP/HTTP
spec does not require Content-Length, and the OpenTelemetry JS exporter and many proxies send
`Transfer-Encoding: chunked`: both are accepted, with the size limit enforced while the body is read.
Limits per connection (count, head/idle timeouts, bounded drain) are in receivers/http_protocol.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import Any

from pinnprov.collector.auth import BearerToken
from pinnprov.collector.config import split_endpoint
from pinnprov.collector.receivers.http_app import SIGNAL_PATHS, AppSettings, ExtraRoute, OtlpHttpApp
from pinnprov.collector.receivers.http_server import HttpLimits, ThreadedAsgiServer
from pinnprov.collector.receivers.intake import Intake

log = logging.getLogger(__name__)

Route = ExtraRoute  # the name service.py and older code use


def drain_limit(max_request_bytes: int) -> int:
    """Unread body bytes worth dropping to keep a connection: a few over-limit requests, at least 64 MiB."""
    return max(4 * max_request_bytes, 64 << 20)


class HttpReceiver:
    """Bound in the constructor (OSError if the port is taken); `port` is the bound port (useful with port 0)."""

    def __init__(
        self,
        endpoint: str,
        intake: Intake,
        *,
        token: BearerToken,
        max_request_bytes: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], dict[str, Any]],
        routes: Sequence[ExtraRoute] = (),
        ssl_context: SSLContext | None = None,
        max_concurrent: int = 16,
        limits: HttpLimits | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.intake = intake
        limits = limits or HttpLimits(drain_limit_bytes=drain_limit(max_request_bytes))
        app = OtlpHttpApp(AppSettings(intake=intake, token=token, max_request_bytes=max_request_bytes, health=health,
                                      metrics=metrics, routes=tuple(routes), max_concurrent=max_concurrent,
                                      body_timeout_s=body_timeout_s, drain_limit_bytes=limits.drain_limit_bytes))
        host, port = split_endpoint(endpoint, "http_endpoint")
        self._server = ThreadedAsgiServer(app.app, host, port, limits=limits, ssl_context=ssl_context,
                                          refuse=self._refuse, name="otlp-http", server_header="pinnprov-collector")
        self.port = self._server.port
        self.endpoint = f"{endpoint.rpartition(':')[0]}:{self.port}"

    def _refuse(self, path: str | None, reason: str, kind: str) -> None:
        self.intake.refuse(SIGNAL_PATHS.get(path or ""), reason, kind)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
