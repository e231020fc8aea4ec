"""OTLP exporters for traces and metrics: endpoint and protocol resolution by the standard OTEL_* rules.

Precedence per setting: explicit argument > signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_*) >
generic variable (OTEL_EXPORTER_OTLP_*) > default. Protocol: `grpc` unless told `http/protobuf`, or unless the
endpoint itself says HTTP (port 4318 or a `/v1/traces` path), because pointing a gRPC client at an HTTP
receiver fails in confusing ways. An endpoint without a scheme (`127.0.0.1:4317`) means plaintext `http://`:
the collector binds loopback without TLS by default; give `https://` for TLS.

Headers and the CA file are resolved once for every client in pinnprov/capture/destination.py; timeout and
compression are left to the SDK exporters, which read their OTEL_* variables themselves when the argument is None.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

PROTOCOLS = ("grpc", "http/protobuf")
HTTP_PORT = 4318
TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def traces_endpoint(explicit: str | None = None) -> str | None:
    """The configured trace endpoint or None (no endpoint anywhere means: use the embedded store)."""
    if explicit is not None and not explicit.strip():
        raise ValueError("otlp_endpoint: must not be empty")
    return explicit or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT")


def with_scheme(endpoint: str) -> str:
    """`host:port` -> `http://host:port`; anything but http(s) with a host and a valid port is a ValueError."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"otlp_endpoint: expected [http[s]://]host:port[/path], got {endpoint!r}")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError as error:
        raise ValueError(f"otlp_endpoint: {error} in {endpoint!r}") from None
    return endpoint


def resolve_protocol(endpoint: str, explicit: str | None = None) -> str:
    """grpc or http/protobuf: explicit > OTEL_EXPORTER_OTLP_TRACES_PROTOCOL > OTEL_EXPORTER_OTLP_PROTOCOL > URL."""
    for source, value in (
        ("protocol", explicit),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", _env("OTEL_EXPORTER_OTLP_PROTOCOL")),
    ):
        if value:
            if value not in PROTOCOLS:
                raise ValueError(f"{source}: unsupported OTLP protocol {value!r} (choose from: {', '.join(PROTOCOLS)})")
            return value
    parts = urlsplit(with_scheme(endpoint))
    if parts.port == HTTP_PORT or parts.path.rstrip("/").endswith(TRACES_PATH):
        return "http/protobuf"
    return "grpc"


def _http_url(endpoint: str, path: str, signal_env: str) -> str:
    """OTLP/HTTP URL: a signal-specific variable is used verbatim (as the spec says); any other endpoint is a
    base URL that gets the signal path (a trailing /v1/traces or /v1/metrics is replaced, not doubled)."""
    if endpoint == _env(signal_env):
        return with_scheme(endpoint)
    parts = urlsplit(with_scheme(endpoint))
    base = parts.path.rstrip("/")
    for suffix in (TRACES_PATH, METRICS_PATH):
        base = base.removesuffix(suffix)
    return urlunsplit(parts._replace(path=base + path))


def parse_headers(headers: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """`k1=v1,k2=v2` (the OTEL_EXPORTER_OTLP_HEADERS format: W3C baggage, so keys and values are
    percent-decoded, `Bearer%20x` is `Bearer x`) or a mapping; None lets the SDK read the env."""
    if headers is None:
        return None
    if isinstance(headers, Mapping):
        return {str(k).lower(): str(val) for k, val in headers.items()}
    result: dict[str, str] = {}
    for item in headers.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"headers: expected key=value pairs separated by commas, got {item!r}")
        result[unquote(key.strip()).lower()] = unquote(value.strip())
    return result


def _grpc_credentials(endpoint: str, ca_file: str | None) -> object | None:
    """TLS channel credentials trusting `ca_file` for an https endpoint; None lets the SDK decide (env, system CAs)."""
    if ca_file is None or not with_scheme(endpoint).startswith("https://"):
        return None
    import grpc

    with open(ca_file, "rb") as file:
        credentials: object = grpc.ssl_channel_credentials(root_certificates=file.read())  # grpc is untyped
    return credentials


def span_exporter(
    endpoint: str,
    *,
    protocol: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    ca_file: str | None = None,
) -> SpanExporter:
    """An OTLP span exporter for `endpoint` (gRPC or HTTP/protobuf)."""
    chosen = resolve_protocol(endpoint, protocol)
    parsed_headers = parse_headers(headers)
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(endpoint=with_scheme(endpoint), headers=parsed_headers, timeout=timeout_s,
                                credentials=_grpc_credentials(endpoint, ca_file))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    url = _http_url(endpoint, TRACES_PATH, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return HttpSpanExporter(endpoint=url, headers=parsed_headers, timeout=timeout_s, certificate_file=ca_file)


def metric_exporter(
    endpoint: str,
    *,
    protocol: str | None = None,
    headers: str | Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    ca_file: str | None = None,
) -> MetricExporter | None:
    """An OTLP metric exporter next to the trace endpoint, or None when OTEL_METRICS_EXPORTER=none."""
    if (_env("OTEL_METRICS_EXPORTER") or "otlp").lower() == "none":
        return None
    metrics_endpoint = _env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or endpoint
    chosen = resolve_protocol(metrics_endpoint, protocol)
    parsed_headers = parse_headers(headers)
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        return GrpcMetricExporter(endpoint=with_scheme(metrics_endpoint), headers=parsed_headers, timeout=timeout_s,
                                  credentials=_grpc_credentials(metrics_endpoint, ca_file))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    url = _http_url(metrics_endpoint, METRICS_PATH, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    return HttpMetricExporter(endpoint=url, headers=parsed_headers, timeout=timeout_s, certificate_file=ca_file)
