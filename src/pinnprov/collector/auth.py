"""Who may send: loopback detection, bearer-token checks for both receivers, and TLS material.

The collector listens on loopback unless told otherwise; anywhere else it insists on a token (config.py
refuses to start without one). Clients send it the standard OTLP way: `Authorization: Bearer <token>` set
through the exporter's `headers` (OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20<token>").
Comparison is constant-time so the token cannot be guessed byte by byte from response timings.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc


def is_loopback(host: str) -> bool:
    """True if every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class BearerToken:
    """Checks an Authorization header value against the configured token (no token: everything passes)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode() if token else b""

    @property
    def required(self) -> bool:
        return bool(self._expected)

    def allows(self, authorization: str | None) -> bool:
        if not self._expected:
            return True
        if authorization is None:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        presented = f"{scheme.capitalize()} {credentials.strip()}".encode()
        return hmac.compare_digest(presented, self._expected)


class GrpcAuthInterceptor(grpc.ServerInterceptor):
    """Refuses every RPC without the right bearer token with UNAUTHENTICATED, before any handler runs."""

    def __init__(self, token: BearerToken, on_refused: Callable[[], None] = lambda: None) -> None:
        self._token = token
        self._on_refused = on_refused

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        metadata = dict(handler_call_details.invocation_metadata or ())
        if self._token.allows(metadata.get("authorization")):
            return continuation(handler_call_details)
        self._on_refused()
        return self._deny


def grpc_server_credentials(cert_file: Path, key_file: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(key_file.read_bytes(), cert_file.read_bytes())])


def http_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context
